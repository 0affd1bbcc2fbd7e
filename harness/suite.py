"""The suite's commands, run by ./suite with the cached venv's Python.

  test   lint (flake8, planemo lint, planemo workflow_lint), pytest, then planemo test of
         every tool and every workflow against one local Galaxy started for the run
  main   the main job: the hot/cold workflow on the bundled real sky image, in Galaxy;
         every output is written to results/<date-time>/
  serve  start Galaxy with the suite's tools and workflows for a person to use in a browser
  validate  run SExtractor and CluSex beside our tools; write validation/report.md
"""

import argparse
import concurrent.futures
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser_check  # noqa: E402
from galaxy_server import (  # noqa: E402
    api, free_port, GalaxyServer, import_workflows, PULSAR_USER, REPO, Stop, stop_on_signals,
    tool_files, tool_ids, TOOL_SECTION,
)
from pulsar_server import PulsarServer  # noqa: E402
from suite_package import ensure_package, package_env  # noqa: E402

OUTPUT_DIR = os.path.join(REPO, "test-output")
CLUSEX_VERSION = "2.5.6"
PYTHON_SOURCES = ["scripts", "tests", "harness", "bench", "validation"]


def venv_bin(name):
    return os.path.join(sys.prefix, "bin", name)


def say(message):
    print(f"\n=== {message}", flush=True)


RUNNING = set()  # the commands run() has started and not yet seen end


def run(command, **kwargs):
    """Run a command, streaming its output; return its exit status."""
    print("$ " + " ".join(command), flush=True)
    process = subprocess.Popen(command, cwd=kwargs.pop("cwd", REPO), **kwargs)
    RUNNING.add(process)
    try:
        return process.wait()
    finally:
        RUNNING.discard(process)


def stop_running():
    """End every command still running (a stop signal arrived while the threads of
    in_parallel() wait for them)."""
    for process in list(RUNNING):
        process.terminate()
    for process in list(RUNNING):
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def in_parallel(function, items):
    """[function(item) for item in items], each in its own thread; a stop signal ends the
    commands they run instead of waiting for them."""
    pool = concurrent.futures.ThreadPoolExecutor(len(items))
    try:
        return list(pool.map(function, items))
    except BaseException:
        stop_running()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Stages:
    """Records each stage's outcome and prints a summary at the end."""

    def __init__(self):
        self.rows = []

    def add(self, name, ok, detail="", seconds=0.0):
        self.rows.append((name, ok, detail, seconds))
        print(f"--- {name}: {'ok' if ok else 'FAILED'} {detail} ({seconds:.0f} s)", flush=True)

    def timed(self, name, function):
        start = time.time()
        ok, detail = function()
        self.add(name, ok, detail, time.time() - start)
        return ok

    @property
    def ok(self):
        return all(row[1] for row in self.rows)

    def report(self):
        say("summary")
        for name, ok, detail, seconds in self.rows:
            print(f"  {'ok    ' if ok else 'FAILED'} {name:<28} {seconds:6.0f} s  {detail}")


# --------------------------------------------------------------------------------------
# Lint and pytest
# --------------------------------------------------------------------------------------

def lint_python():
    sources = [p for p in PYTHON_SOURCES if os.path.isdir(os.path.join(REPO, p))]
    status = run([venv_bin("flake8")] + sources)
    return status == 0, "flake8"


def lint_tools():
    paths = [os.path.join("tools", name) for name in tool_files()]
    status = run([venv_bin("planemo"), "lint", "--fail_level", "warn", "--report_level",
                  "warn"] + paths)
    return status == 0, f"{len(paths)} tools"


def workflow_files():
    return sorted(glob.glob(os.path.join(REPO, "workflows", "*.gxwf.yml")))


def lint_workflows():
    files = workflow_files()
    if not files:
        return True, "no workflows"
    status = run([venv_bin("planemo"), "workflow_lint", "--fail_level", "warn"] + files)
    return status == 0, f"{len(files)} workflows"


def run_pytest(extra=()):
    status = run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                  f"--junitxml={os.path.join(OUTPUT_DIR, 'pytest.xml')}", *extra])
    return status == 0, "see the pytest summary above"


# --------------------------------------------------------------------------------------
# planemo against the local Galaxy
# --------------------------------------------------------------------------------------

def planemo_test(server, targets, name, key=None, indices=()):
    """planemo test of the given tools or workflows as the user of `key` (default: the
    admin), only the tests of the given 1-based indices if any; returns (ok, passed,
    failed)."""
    json_path = os.path.join(OUTPUT_DIR, f"{name}.json")
    command = [venv_bin("planemo"), "test", "--engine", "external_galaxy",
               "--galaxy_url", server.url, "--galaxy_admin_key", server.key,
               "--galaxy_user_key", key or server.key, "--test_timeout", "600",
               "--test_output", os.path.join(OUTPUT_DIR, f"{name}.html"),
               "--test_output_json", json_path, *targets]
    for index in indices:
        command += ["--test_index", str(index)]
    log_path = os.path.join(OUTPUT_DIR, f"{name}.log")
    with open(log_path, "w") as log:
        status = run(command, stdout=log, stderr=subprocess.STDOUT)
    passed, failed = count_results(json_path)
    if status != 0 or failed or not passed:
        with open(log_path) as log:
            tail = log.read()[-6000:]
        print(f"--- {name}: planemo exited {status}; end of {log_path}:\n{tail}", flush=True)
    return status == 0 and failed == 0 and passed > 0, passed, failed


def count_results(json_path, quiet=False):
    """(passed, failed) from planemo's structured test output."""
    try:
        with open(json_path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return 0, 0
    passed = failed = 0
    for test in data.get("tests", []):
        status = test.get("data", {}).get("status")
        if status == "success":
            passed += 1
        else:
            failed += 1
            if not quiet:
                print(f"    failed: {test.get('id')}", flush=True)
    return passed, failed


def tool_test_counts():
    """{tools/<name>.xml: how many <test> elements it has}, in the tools' order."""
    counts = {}
    for name in tool_files():
        with open(os.path.join(REPO, "tools", name)) as handle:
            counts[os.path.join("tools", name)] = len(re.findall(r"<test[\s>]", handle.read()))
    return counts


def planemo_call(tests, counts):
    """The tools and planemo's 1-based --test_index numbers (counted over all the tests of
    the call's tools, in order) of a list of (tool, test number) pairs."""
    paths = [path for path in counts if any(test[0] == path for test in tests)]
    offsets, offset = {}, 0
    for path in paths:
        offsets[path] = offset
        offset += counts[path]
    return paths, sorted(offsets[path] + number for path, number in tests)


def split_tests(counts, parts, skip_first=False):
    """The tool tests dealt out to `parts` planemo calls like cards (about the same number
    of tests each, the long sep_extract list shared out too); each tool's first test left
    out with skip_first. Returns [(tools, test indices)]."""
    tests = [(path, number) for path in counts for number in range(1, counts[path] + 1)
             if not (skip_first and number == 1)]
    return [planemo_call(tests[part::parts], counts) for part in range(parts)
            if tests[part::parts]]


def tool_test_runs(server, parallel, pulsar_sample):
    """The planemo calls of the tool tests: (name, tools, user key, test indices). With
    pulsar_sample, each tool's first test runs as the Pulsar user (its jobs go to Pulsar)
    and the other calls run the rest."""
    counts = tool_test_counts()
    runs = [(f"tools-{number}", paths, server.key, indices) for number, (paths, indices)
            in enumerate(split_tests(counts, parallel, pulsar_sample), 1)]
    if pulsar_sample:
        paths, indices = planemo_call([(path, 1) for path in counts], counts)
        runs.append(("tools-pulsar", paths, server.pulsar_key, indices))
    return runs


def test_tools_in_galaxy(server, parallel, pulsar_sample):
    """planemo test of every tool, the calls of tool_test_runs() at once."""
    runs = tool_test_runs(server, parallel, pulsar_sample)
    results = in_parallel(lambda run_: planemo_test(server, run_[1], run_[0], run_[2],
                                                    run_[3]), runs)
    passed = sum(r[1] for r in results)
    failed = sum(r[2] for r in results)
    print(f"planemo tools: {passed} passed, {failed} failed", flush=True)
    return all(r[0] for r in results), f"{passed} passed, {failed} failed"


PULSAR_WORKFLOW = "hot_cold_catalog"  # the workflow test that runs through Pulsar


def test_workflows_in_galaxy(server, pulsar_sample):
    files = [f for f in workflow_files()
             if os.path.exists(f.replace(".gxwf.yml", ".gxwf-tests.yml"))]
    if not files:
        return True, "no workflow tests"
    runs = [("workflows", files, server.key)]
    if pulsar_sample:
        remote = [f for f in files if os.path.basename(f) == f"{PULSAR_WORKFLOW}.gxwf.yml"]
        runs = [("workflows", [f for f in files if f not in remote], server.key),
                ("workflows-pulsar", remote, server.pulsar_key)]
    results = in_parallel(lambda run_: planemo_test(server, run_[1], run_[0], run_[2]), runs)
    passed = sum(r[1] for r in results)
    failed = sum(r[2] for r in results)
    print(f"planemo workflows: {passed} passed, {failed} failed", flush=True)
    return all(r[0] for r in results), f"{passed} passed, {failed} failed"


def editor_messages(steps, where=""):
    """Every step's upgrade messages (the "No value found for ... Using default" lines
    that make Galaxy's workflow editor open with "Issues loading this workflow"), with
    those of the subworkflows' steps."""
    messages = []
    for step in steps.values():
        name = where + str(step.get("label") or step.get("name"))
        if step.get("upgrade_messages"):
            messages.append(f"{name}: {step['upgrade_messages']}")
        if step.get("subworkflow"):
            messages += editor_messages(step["subworkflow"]["steps"], name + " > ")
    return messages


def check_workflow_editor(url, key):
    """The workflows as Galaxy's editor loads them: no step with upgrade messages."""
    problems, names = [], []
    for workflow in api(url, "/api/workflows", key=key):
        loaded = api(url, f"/api/workflows/{workflow['id']}/download?style=editor", key=key,
                     timeout=120)
        names.append(workflow["name"])
        problems += [f"{workflow['name']}: {m}" for m in editor_messages(loaded["steps"])]
    if problems or not names:
        return False, "; ".join(problems)[:3000] or "no workflows imported"
    return True, f"{len(names)} workflows, no step with upgrade messages"


HOT_COLD_OUTPUTS = ("hot catalog", "cold catalog", "catalog regions", "object mask",
                    "saturated-star regions", "catalog with local sky", "picture")


def check_history_names(url, key):
    """The datasets the hot/cold workflow made (in the workflow tests that embed it) carry
    its output labels as their names in the history, not "Extract sources on data 1"."""
    missing = []
    for name in HOT_COLD_OUTPUTS:
        found = api(url, "/api/datasets?q=name-eq&qv=" + urllib.parse.quote(name)
                    + "&limit=1&keys=id,name", key=key)
        if not found:
            missing.append(name)
    if missing:
        return False, "no dataset named " + ", ".join(repr(m) for m in missing)
    return True, f"{len(HOT_COLD_OUTPUTS)} outputs named after their labels"


def viewer_dataset(url, key):
    """(id, name) of an image the tests uploaded (sep's frame, the hot/cold workflow's
    input: a catalog's image), for the FITS viewer in the browser check; None if none."""
    for name in ("sep_image.fits", None):
        query = "extension-eq" + ("&q=name-eq" if name else "")
        values = "fits" + (f"&qv={urllib.parse.quote(name)}" if name else "")
        found = api(url, f"/api/datasets?q={query}&qv={values}&limit=1&keys=id,name", key=key)
        if found:
            return found[0]["id"], found[0]["name"]
    return None


def check_fits_viewer(url, key):
    """Galaxy's Visualize offers the FITS viewer (Aladin Lite) for a FITS dataset of the
    tests, and serves the viewer's script."""
    datasets = api(url, "/api/datasets?q=extension-eq&qv=fits&limit=1&keys=id,name", key=key)
    if not datasets:
        return False, "no FITS dataset in the histories"
    plugins = api(url, f"/api/plugins?dataset_id={datasets[0]['id']}", key=key)
    viewer = next((p for p in plugins if p["name"] == "aladin"), None)
    if viewer is None:
        return False, (f"Visualize offers {[p['name'] for p in plugins]} for "
                       f"{datasets[0]['name']}, no FITS viewer")
    script = f"{url}{viewer['href']}/{viewer['entry_point']['attr']['src']}"
    with urllib.request.urlopen(script, timeout=60) as answer:
        size = len(answer.read())
    if size < 100_000:
        return False, f"the viewer's script {script} has only {size} bytes"
    return True, (f"'{viewer['html']}' offered for {datasets[0]['name']}; "
                  f"its script {size // 1000} kB")


def check_pulsar_jobs(server, pulsar, pulsar_all):
    """Every job of the suite's tools that the Pulsar user ran (or every one, with
    pulsar_all) went through the Pulsar runner, has its own folder with its files in
    Pulsar's staging directory (Pulsar keeps them: cleanup_job never), and names no path of
    Galaxy's in its command line; every tool has such a job."""
    ids = set(tool_ids())
    jobs = api(server.url, "/api/jobs?view=admin_job_list&user_details=true&limit=100000",
               key=server.key, timeout=120)
    remote = [job for job in jobs if job["tool_id"] in ids and job["state"] in ("ok", "error")
              and (pulsar_all or job.get("user_email") == PULSAR_USER)]
    wrong = [job for job in remote if not ran_in_pulsar(server, pulsar, job)]
    missing = ids - {job["tool_id"] for job in remote}
    detail = (f"{len(remote)} jobs of {len(ids) - len(missing)} tools ran in Pulsar's "
              f"staging directory {pulsar.staging_directory}")
    if wrong or missing:
        names = sorted({job['tool_id'] for job in wrong})
        return False, (f"{detail}; not run by Pulsar: {', '.join(names) or 'none'}; "
                       f"tools without a Pulsar job: {', '.join(sorted(missing)) or 'none'}")
    errors = sum(job["state"] == "error" for job in remote)
    return True, detail + (f" ({errors} of them tests of a failure)" if errors else "")


def ran_in_pulsar(server, pulsar, job):
    command = job.get("command_line") or ""
    if job.get("job_runner_name") != "pulsar" or server.workdir in command:
        return False
    number = api(server.url, f"/api/configuration/decode/{job['id']}", key=server.key)
    folder = os.path.join(pulsar.staging_directory, str(number["decoded_id"]))
    return any(files for _, _, files in os.walk(folder))


class FakeLegacyService:
    """The local imitation of the Legacy Surveys cutout service (tests/), for Galaxy's jobs:
    its URL goes to DESI_LEGACY_BASE_URL in Galaxy's environment, which jobs inherit."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "fake_legacy_service.py")],
            stdout=subprocess.PIPE, text=True)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError("the fake Legacy Surveys service did not start")
        print(f"[fake service] Legacy Surveys imitation at {self.url}", flush=True)

    def env(self):
        return {"DESI_LEGACY_BASE_URL": self.url, "DESI_LEGACY_RETRY_DELAY": "0.2",
                "DESI_LEGACY_TIMEOUT": "30"}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def service_env():
    """Outside services for `main` and `serve`: the real ones, unless the caller's
    environment names another Legacy Surveys address (a mirror, or the local imitation)."""
    names = ("DESI_LEGACY_BASE_URL", "DESI_LEGACY_TIMEOUT", "DESI_LEGACY_RETRY_DELAY")
    return {name: os.environ[name] for name in names if name in os.environ}


def galaxy_workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("ASTRO_SUITE_TMP"))


def test_in_galaxy(args, stages):
    """The planemo tests of every tool and workflow in one local Galaxy, with a Pulsar
    server beside it: each tool's first test and the hot/cold workflow test run as the
    Pulsar user, whose jobs Galaxy sends to Pulsar (--pulsar-all: every test there), and a
    last check that those jobs really ran in Pulsar's staging directory."""
    fake = FakeLegacyService()
    start = time.time()
    pulsar = PulsarServer(galaxy_workdir("astro-pulsar-test-"), free_port(),
                          env={**fake.env(), **package_env(ensure_package())})
    server = GalaxyServer(galaxy_workdir("astro-galaxy-test-"), extra_env=fake.env(),
                          pulsar=pulsar, pulsar_user="*" if args.pulsar_all else PULSAR_USER)
    sample = not args.pulsar_all
    try:
        pulsar.start()
        server.start()
        stages.add("Galaxy and Pulsar start", True, f"{server.url}, Pulsar {pulsar.url}",
                   time.time() - start)
        # workflow tests (a separate planemo call: planemo 0.75 crashes on a mixed one)
        # run beside the tool tests
        in_parallel(lambda stage: stages.timed(*stage), [
            ("planemo test (workflows)", lambda: test_workflows_in_galaxy(server, sample)),
            ("planemo test (tools)", lambda: test_tools_in_galaxy(server, args.parallel,
                                                                  sample))])
        stages.timed("Pulsar jobs ran remotely",
                     lambda: check_pulsar_jobs(server, pulsar, args.pulsar_all))
        # what a person meets, through the API: then in a browser
        import_workflows(server.url, server.key, workflow_files())
        stages.timed("workflow editor loads clean",
                     lambda: check_workflow_editor(server.url, server.key))
        stages.timed("FITS viewer offered", lambda: check_fits_viewer(server.url, server.key))
        stages.timed("history names the workflow outputs",
                     lambda: check_history_names(server.url, server.key))
        if not args.skip_browser:
            stages.timed("browser (chromium)",
                         lambda: browser_check.check(server.url, OUTPUT_DIR,
                                                     viewer_dataset(server.url, server.key)))
    except Exception as err:
        stages.add("Galaxy", False, str(err), time.time() - start)
    finally:
        server.stop()
        pulsar.stop()
        fake.stop()
        if not stages.ok:
            server.keep_log(os.path.join(OUTPUT_DIR, "galaxy.log"))
            if os.path.exists(pulsar.log_path):
                shutil.copy(pulsar.log_path, os.path.join(OUTPUT_DIR, "pulsar.log"))


def cmd_test(args):
    os.makedirs(OUTPUT_DIR, exist_ok=True)
    for stale in glob.glob(os.path.join(OUTPUT_DIR, "*")):  # reports of an earlier run
        if os.path.isfile(stale):
            os.remove(stale)
    stages = Stages()
    if not args.skip_lint:
        stages.timed("flake8", lint_python)
        stages.timed("planemo lint (tools)", lint_tools)
        stages.timed("planemo workflow_lint", lint_workflows)
    if not args.skip_pytest:
        stages.timed("pytest", run_pytest)
    if not args.skip_galaxy:
        test_in_galaxy(args, stages)
    stages.report()
    print(f"\ntest finished in {elapsed()} s with status {0 if stages.ok else 1}", flush=True)
    passed, failed, skipped = test_counts()
    # one closing line for CI: every pytest and planemo test of this run
    print(f"suite: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 0 if stages.ok else 1


def test_counts():
    """(passed, failed, skipped) over pytest's JUnit XML and planemo's JSON reports."""
    import xml.etree.ElementTree as ElementTree
    passed = failed = skipped = 0
    try:
        suite = ElementTree.parse(os.path.join(OUTPUT_DIR, "pytest.xml")).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total, bad = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(
            suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        passed, failed = total - bad - skipped, bad
    except (OSError, ElementTree.ParseError, AttributeError):
        pass
    for path in glob.glob(os.path.join(OUTPUT_DIR, "*.json")):
        ok, bad = count_results(path, quiet=True)
        passed, failed = passed + ok, failed + bad
    return passed, failed, skipped


def wait_until_interrupted(server):
    try:
        while server.process.poll() is None:
            time.sleep(2)
    except KeyboardInterrupt:
        pass


def cmd_serve(args):
    server = GalaxyServer(galaxy_workdir("astro-galaxy-serve-"), port=args.port,
                          extra_env=service_env())
    with server:
        names = import_workflows(server.url, server.key, workflow_files())
        print(f"\nGalaxy with the source-extraction suite: {server.url}\n"
              f"  tools: section '{TOOL_SECTION[1]}'; workflows: {', '.join(names)}\n"
              f"  login: admin@example.org / astro-suite-admin   (API key {server.key})\n"
              "  press Ctrl-C to stop", flush=True)
        wait_until_interrupted(server)
    return 0


MAIN_WORKFLOWS = {
    "hot_cold_catalog": "the CluSex hot/cold catalog, mask and local sky of a FITS image",
    "desi_sources": "a Legacy Surveys cutout (needs internet), its sources and their ellipses",
    "desi_hot_cold": "a Legacy Surveys cutout (needs internet) through the hot/cold workflow",
}
DEFAULT_IMAGE = os.path.join(REPO, "test-data", "sep_image.fits")


def write_job(path, workflow, args):
    """The planemo job file: the image (or the sky position) and any parameters."""
    lines = []
    if workflow == "hot_cold_catalog":
        image = os.path.abspath(args.image or DEFAULT_IMAGE)
        if not os.path.isfile(image):
            raise SystemExit(f"Error: image {image} not found")
        lines += ["Sky image:", "  class: File", f"  path: {json.dumps(image)}",
                  "  filetype: fits"]
    else:  # the DESI workflows start from a sky position
        lines += [f"RA: {json.dumps(args.ra)}", f"Dec: {json.dumps(args.dec)}",
                  f"size: {args.size}", f"band: {json.dumps(args.band)}"]
    for item in args.param:
        name, _, value = item.partition("=")
        lines.append(f"{json.dumps(name)}: {value}")
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def collect_outputs(run_json, out_dir):
    """Rename planemo's downloads to '<output label>.<ext>'; return {label: path}."""
    with open(run_json) as handle:
        outputs = json.load(handle)
    named = {}
    for label, info in outputs.items():
        source = info.get("path") if isinstance(info, dict) else None
        if not source or not os.path.exists(source):
            continue
        extension = os.path.splitext(source)[1]
        target = os.path.join(out_dir, label.replace(" ", "_").replace("/", "_") + extension)
        os.replace(source, target)
        named[label] = target
    # collection elements come as '<element>__<uuid>.<ext>'
    for name in sorted(os.listdir(out_dir)):
        match = re.match(r"^(.+)__[0-9a-f-]{36}(\.\w+)$", name)
        if match:
            target = os.path.join(out_dir, match.group(1) + match.group(2))
            os.replace(os.path.join(out_dir, name), target)
            named[f"collection element {match.group(1)}"] = target
    return named


def count_rows(path):
    with open(path) as handle:
        return sum(1 for line in handle if line.strip() and not line.startswith("#"))


def count_shapes(path):
    with open(path) as handle:
        return sum(1 for line in handle if "(" in line and not line.startswith("#"))


def report_main(named, out_dir, seconds):
    say(f"main job done in {seconds:.0f} s; results in {os.path.relpath(out_dir, REPO)}/")
    for label, path in sorted(named.items()):
        detail = ""
        if path.endswith(".tabular"):
            detail = f"{count_rows(path)} objects"
        elif path.endswith(".txt"):
            detail = f"{count_shapes(path)} ds9 shapes"
        print(f"  {label:<26} {os.path.relpath(path, REPO):<55} {detail}")
    picture = next((p for p in named.values() if p.endswith(".png")), None)
    if picture:
        print(f"\nThe picture: {picture}")


def cmd_main(args):
    workflow = args.workflow
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out_dir = os.path.join(REPO, "results", stamp)
    os.makedirs(out_dir, exist_ok=True)
    job = os.path.join(out_dir, "job.yml")
    write_job(job, workflow, args)
    server = GalaxyServer(galaxy_workdir("astro-galaxy-main-"), extra_env=service_env())
    start = time.time()
    say(f"1/3 starting a local Galaxy (about 30 s) for workflow {workflow}: "
        f"{MAIN_WORKFLOWS[workflow]}")
    try:
        server.start()
        say(f"2/3 running the workflow in Galaxy ({time.time() - start:.0f} s so far); "
            "planemo shows each job's state")
        run_json = os.path.join(out_dir, "outputs.json")
        status = run([venv_bin("planemo"), "run", os.path.join("workflows",
                                                               f"{workflow}.gxwf.yml"), job,
                      "--engine", "external_galaxy", "--galaxy_url", server.url,
                      "--galaxy_user_key", server.key, "--download_outputs",
                      # Galaxy's job cache query needs SQLite >= 3.44 (concat_ws)
                      "--no_use_cache",
                      "--output_directory", out_dir, "--output_json", run_json])
        if status != 0:
            server.keep_log(os.path.join(out_dir, "galaxy.log"))
            print(f"Error: the workflow failed (planemo exit status {status}); Galaxy's log "
                  f"is in {out_dir}", file=sys.stderr)
            return 1
        say(f"3/3 collecting the outputs ({time.time() - start:.0f} s so far)")
        report_main(collect_outputs(run_json, out_dir), out_dir, time.time() - start)
        if args.keep_running:
            print(f"\nGalaxy keeps running at {server.url} (login admin@example.org / "
                  "astro-suite-admin); Ctrl-C stops it", flush=True)
            wait_until_interrupted(server)
        return 0
    finally:
        server.stop()


def cmd_validate(args):
    """SExtractor (Debian) and CluSex (PyPI, a venv of its own) against our tools."""
    if not shutil.which("source-extractor"):
        say("installing Debian's source-extractor with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "source-extractor"], check=True,
                       env=env)
    clusex_venv = os.path.join(os.path.dirname(sys.prefix), f"clusex-{CLUSEX_VERSION}")
    if not os.path.exists(os.path.join(clusex_venv, ".complete")):
        say(f"installing CluSex {CLUSEX_VERSION} in {clusex_venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", clusex_venv], check=True)
        subprocess.run([os.path.join(clusex_venv, "bin", "pip"), "install", "--quiet",
                        f"clusex=={CLUSEX_VERSION}"], check=True)
        open(os.path.join(clusex_venv, ".complete"), "w").close()
    return run([sys.executable, os.path.join(REPO, "validation", "run_validation.py"),
                "--clusex-bin", os.path.join(clusex_venv, "bin")])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test", help="lint, pytest and planemo tests in a real Galaxy")
    test.add_argument("--skip-lint", action="store_true")
    test.add_argument("--skip-pytest", action="store_true")
    test.add_argument("--skip-galaxy", action="store_true")
    test.add_argument("--skip-browser", action="store_true")
    test.add_argument("--parallel", type=int, default=3,
                      help="planemo processes testing tools at once (default 3; one more "
                           "runs the tests sent to Pulsar)")
    test.add_argument("--pulsar-all", action="store_true",
                      help="send every job of the suite's tools to the Pulsar server "
                           "(default: each tool's first test and the hot/cold workflow test)")
    serve = sub.add_parser("serve", help="start Galaxy with the suite for a browser")
    serve.add_argument("--port", type=int, default=8080)
    main_job = sub.add_parser("main", help="run the main job (hot/cold workflow)")
    main_job.add_argument("--image", help="another FITS image instead of the bundled one")
    main_job.add_argument("--workflow", default="hot_cold_catalog",
                          choices=sorted(MAIN_WORKFLOWS), help="which workflow to run")
    main_job.add_argument("--ra", default="150.1", help="DESI workflows: RA (default 150.1)")
    main_job.add_argument("--dec", default="2.2", help="DESI workflows: Dec (default 2.2)")
    main_job.add_argument("--size", type=int, default=256, help="DESI workflows: pixels")
    main_job.add_argument("--band", default="r", help="DESI workflows: band (default r)")
    main_job.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          help="a workflow parameter, e.g. 'Cold run detection threshold=1.5' "
                               "(repeatable)")
    main_job.add_argument("--keep-running", action="store_true",
                          help="keep Galaxy running afterwards, to look at the history")
    sub.add_parser("validate", help="compare with SExtractor and CluSex; write "
                                    "validation/report.md")
    args = parser.parse_args(argv)
    STARTED[0] = datetime.datetime.now()
    stop_on_signals()
    try:
        status = {"test": cmd_test, "serve": cmd_serve, "main": cmd_main,
                  "validate": cmd_validate}[args.command](args)
    except Stop as stop:  # Galaxy was stopped on the way out of its `with` block
        print(f"\n{args.command}: {stop}", flush=True)
        return 130
    except RuntimeError as err:  # a server that cannot start: one clear line
        print(f"Error: {err}", file=sys.stderr, flush=True)
        return 1
    if args.command != "test":  # the test command ends with its count line instead
        print(f"\n{args.command} finished in {elapsed()} s with status {status}", flush=True)
    return status


STARTED = [datetime.datetime.now()]


def elapsed():
    return (datetime.datetime.now() - STARTED[0]).seconds


if __name__ == "__main__":
    sys.exit(main())
