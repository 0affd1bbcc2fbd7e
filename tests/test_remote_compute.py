"""Remote compute: the tools take their code from the suite's package (a requirement like
any other), and the harness's job configuration sends jobs to a Pulsar destination with
remote staging. The planemo tests that run through Pulsar are in ./suite test."""

import glob
import os
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import data_path, REPO

sys.path.insert(0, os.path.join(REPO, "harness"))
import galaxy_server  # noqa: E402,I100,I202
import pulsar_server  # noqa: E402
import suite  # noqa: E402
import suite_package  # noqa: E402
from astro_suite_job_rules.routing import astro_suite_route  # noqa: E402

TOOLS = sorted(glob.glob(os.path.join(REPO, "tools", "*.xml")))
JOB_ENV = {"DESI_LEGACY_BASE_URL": "http://127.0.0.1:1/viewer"}
PULSAR = {"url": "http://127.0.0.1:2/", "token": "secret", "user": "p@example.org"}


def pyproject():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def macro_token(name):
    with open(os.path.join(REPO, "macros.xml")) as handle:
        return re.search(rf'<token name="@{name}@">([^<]*)</token>', handle.read()).group(1)


# ------------------------------------------------------------------------------------------
# The package the tools require
# ------------------------------------------------------------------------------------------

def test_every_tool_calls_a_command_of_the_package_and_no_repository_path():
    commands = pyproject()["project"]["scripts"]
    for path in TOOLS:
        with open(path) as handle:
            text = handle.read()
        command = re.search(r"<command[^>]*><!\[CDATA\[\s*(\S+)", text).group(1)
        name = os.path.basename(path)[:-4]
        assert command == f"astro-{name.replace('_', '-')}", path
        assert commands[command] == f"astro_source_extraction.entry_points:{name}"
        assert "__tool_directory__" not in text and "@SCRIPTS@" not in text, path


def test_the_package_version_is_the_tools_version_and_macros_require_it():
    version = pyproject()["project"]["version"]
    assert version == macro_token("TOOL_VERSION")
    with open(os.path.join(REPO, "macros.xml")) as handle:
        macros = handle.read()
    assert ('<requirement type="package" version="@TOOL_VERSION@">astro-source-extraction'
            '</requirement>') in macros


def test_the_installed_package_runs_a_tool_as_the_script_does(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTRO_SUITE_CACHE", str(tmp_path / "cache"))
    target = suite_package.ensure_package()
    assert os.path.basename(target) == f"package-{suite_package.source_hash()}"
    package = os.path.join(target, "astro_source_extraction")
    assert os.path.isfile(os.path.join(package, "default.nnw"))  # CLASS_STAR's network
    assert suite_package.ensure_package() == target  # the second call installs nothing
    env = dict(os.environ, **suite_package.package_env(target))
    env.pop("PYTHONSAFEPATH", None)
    image = data_path("sep_image.fits")
    installed = tmp_path / "installed.tabular"
    script = tmp_path / "script.tabular"
    subprocess.run(["astro-sep-extract", "--image", image, "--catalog", str(installed)],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    subprocess.run([sys.executable, os.path.join(REPO, "scripts", "sep_extract.py"),
                    "--image", image, "--catalog", str(script)], check=True,
                   capture_output=True)
    assert installed.read_text() == script.read_text()
    assert installed.read_text().count("\n") > 50
    bad = subprocess.run(["astro-mask-build", "--catalog", "nowhere.tabular"], env=env,
                         cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert not os.path.exists(os.path.join(REPO, "build"))  # the build used a copy


def test_package_hash_follows_the_scripts(tmp_path, monkeypatch):
    before = suite_package.source_hash()
    original = suite_package.REPO
    copy = tmp_path / "repo"
    for name in suite_package.source_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(open(os.path.join(original, name), "rb").read())
    monkeypatch.setattr(suite_package, "REPO", str(copy))
    assert suite_package.source_hash() == before
    with open(copy / "scripts" / "astro_common.py", "a") as handle:
        handle.write("# changed\n")
    assert suite_package.source_hash() != before


# ------------------------------------------------------------------------------------------
# Galaxy's job configuration and the routing rule
# ------------------------------------------------------------------------------------------

def test_local_job_conf_gives_jobs_the_environment_and_the_package():
    conf = galaxy_server.job_conf(JOB_ENV, package="/opt/pkg")
    assert conf["execution"]["default"] == "local"
    assert set(conf["execution"]["environments"]) == {"local"}
    env = conf["execution"]["environments"]["local"]["env"]
    assert {"name": "DESI_LEGACY_BASE_URL", "value": JOB_ENV["DESI_LEGACY_BASE_URL"]} in env
    assert {"name": "PATH", "value": '"/opt/pkg/bin:$PATH"', "raw": True} in env
    assert {"name": "PYTHONPATH", "value": "/opt/pkg"} in env
    assert "pulsar" not in conf["runners"]


def test_pulsar_job_conf_stages_remotely_and_routes_by_user(tmp_path):
    path = tmp_path / "job_conf.yml"
    galaxy_server.write_job_conf(str(path), JOB_ENV, "/opt/pkg", PULSAR)
    conf = yaml.safe_load(path.read_text())
    assert conf["runners"]["pulsar"]["load"] == "galaxy.jobs.runners.pulsar:PulsarRESTJobRunner"
    remote = conf["execution"]["environments"]["pulsar"]
    assert remote["runner"] == "pulsar" and remote["url"] == PULSAR["url"]
    assert remote["private_token"] == "secret"
    assert remote["default_file_action"] == "remote_transfer"
    assert remote["dependency_resolution"] == "remote"
    assert remote["env"] == conf["execution"]["environments"]["local"]["env"]
    route = conf["execution"]["environments"][conf["execution"]["default"]]
    assert route["runner"] == "dynamic" and route["rules_module"] == "astro_suite_job_rules"
    assert sorted(route["suite_tools"].split(",")) == sorted(
        os.path.basename(p)[:-4] for p in TOOLS)
    args = (route["pulsar_user"], route["suite_tools"])
    assert astro_suite_route("sep_extract", "p@example.org", *args) == "pulsar"
    assert astro_suite_route("sky_compute", "p@example.org", *args) == "pulsar"
    assert astro_suite_route("sep_extract", "admin@example.org", *args) == "local"
    assert astro_suite_route("__DATA_FETCH__", "p@example.org", *args) == "local"
    assert astro_suite_route("sep_extract", None, *args) == "local"
    assert astro_suite_route("mask_build", "anyone@x.org", "*", route["suite_tools"]) == "pulsar"
    assert astro_suite_route("__DATA_FETCH__", "anyone@x.org", "*",
                             route["suite_tools"]) == "local"


def test_pulsar_config_keeps_its_staging_apart(tmp_path):
    ini, staging = pulsar_server.write_pulsar_config(str(tmp_path), 8913, "tok")
    assert staging == str(tmp_path / "staging")
    app = yaml.safe_load((tmp_path / "app.yml").read_text())
    assert app["private_token"] == "tok" and app["staging_directory"] == staging
    assert app["conda_auto_install"] is False
    text = open(ini).read()
    assert "host = 127.0.0.1" in text and "port = 8913" in text


# ------------------------------------------------------------------------------------------
# Which tests run through Pulsar, and the check that they did
# ------------------------------------------------------------------------------------------

def called_tests(paths, indices, counts):
    """The (tool, test number) pairs a planemo call of these tools and indices runs."""
    numbers = [(path, n) for path in paths for n in range(1, counts[path] + 1)]
    return [numbers[i - 1] for i in indices]


def test_every_tool_test_runs_once_locally_or_through_pulsar():
    counts = {"tools/a.xml": 9, "tools/b.xml": 2, "tools/c.xml": 3, "tools/d.xml": 4}
    local = [called_tests(paths, indices, counts)
             for paths, indices in suite.split_tests(counts, 3, skip_first=True)]
    paths, indices = suite.planemo_call([(path, 1) for path in counts], counts)
    remote = called_tests(paths, indices, counts)
    assert remote == [(path, 1) for path in counts]
    every = [(path, n) for path in counts for n in range(1, counts[path] + 1)]
    assert sorted(sum(local, []) + remote) == sorted(every)  # each test once, none twice
    assert max(map(len, local)) - min(map(len, local)) <= 1  # the calls share them out
    alone = suite.split_tests(counts, 2)
    assert sorted(sum((called_tests(p, i, counts) for p, i in alone), [])) == sorted(every)


def test_the_real_tools_have_a_first_test_to_send(monkeypatch):
    counts = suite.tool_test_counts()
    assert len(counts) == len(TOOLS) and min(counts.values()) >= 2


class FakeServer:
    url, key, workdir = "http://127.0.0.1:1", "k", "/tmp/galaxy-work"


class FakePulsar:
    def __init__(self, staging):
        self.staging_directory = str(staging)


def fake_job(number, tool, runner="pulsar", user=None, command="astro-x --size 5"):
    return {"id": str(number), "tool_id": tool, "state": "ok", "job_runner_name": runner,
            "user_email": user or galaxy_server.PULSAR_USER, "command_line": command}


@pytest.mark.parametrize("broken, message", [
    (None, ""),
    ("local", "not run by Pulsar: sep_extract"),
    ("galaxy_path", "not run by Pulsar: sep_extract"),
    ("no_folder", "not run by Pulsar: sep_extract"),
    ("missing", "tools without a Pulsar job: sep_extract"),
])
def test_the_pulsar_check_fails_for_a_job_that_ran_locally(tmp_path, monkeypatch, broken,
                                                           message):
    staging = tmp_path / "staging"
    tools = [os.path.basename(p)[:-4] for p in TOOLS]
    jobs = [fake_job(number, tool) for number, tool in enumerate(tools, 1)
            if tool != "sep_extract"]
    jobs += [fake_job(90, "__DATA_FETCH__", runner="local"),  # uploads stay local
             fake_job(91, "sep_extract", runner="local", user="admin@example.org")]
    if broken == "local":
        jobs.append(fake_job(99, "sep_extract", runner="local"))
    elif broken == "galaxy_path":
        jobs.append(fake_job(99, "sep_extract", command="astro-x /tmp/galaxy-work/1/a.dat"))
    elif broken != "missing":
        jobs.append(fake_job(99, "sep_extract"))
    for job in jobs:  # each job's folder on the Pulsar side, with an output in it
        if job["job_runner_name"] == "pulsar" and not (
                broken == "no_folder" and job["tool_id"] == "sep_extract"):
            (staging / job["id"] / "outputs").mkdir(parents=True)
            (staging / job["id"] / "outputs" / "dataset_1.dat").write_text("x")

    def fake_api(url, path, key=None, **kwargs):
        if path.startswith("/api/configuration/decode/"):
            return {"decoded_id": int(path.rsplit("/", 1)[1])}
        return jobs
    monkeypatch.setattr(suite, "api", fake_api)
    ok, detail = suite.check_pulsar_jobs(FakeServer(), FakePulsar(staging), pulsar_all=False)
    assert ok == (broken is None), detail
    assert message in detail


def test_the_readme_names_the_mulled_containers_of_the_requirements():
    from galaxy.tool_util.deps.mulled.util import build_target, v2_image_name
    from galaxy.tool_util.parser import get_tool_source
    with open(os.path.join(REPO, "README.md")) as handle:
        readme = handle.read()
    names = set()
    for path in TOOLS:
        requirements = get_tool_source(path).parse_requirements()[0]
        names.add(v2_image_name([build_target(r.name, r.version) for r in requirements]))
        assert "astro-source-extraction" in [r.name for r in requirements]
    assert len(names) == 2  # the nine tools share one, morphology has its own
    for name in names:
        assert f"`{name}`" in readme


# ------------------------------------------------------------------------------------------
# The FITS viewer plugin of the harness's Galaxy
# ------------------------------------------------------------------------------------------

def fake_npm(tmp_path, with_xml=True):
    """An `npm` whose `pack` writes a package like @galaxyproject/aladin's."""
    import tarfile
    package = tmp_path / "pkg" / "package" / "static"
    package.mkdir(parents=True)
    (package / "index.js").write_text("console.log('viewer')")
    if with_xml:
        (package / "aladin.xml").write_text("<visualization name='FITS Image Viewer'/>")
    archive = tmp_path / "galaxyproject-aladin-0.0.1.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "pkg" / "package", arcname="package")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\n# npm pack NAME --silent --pack-destination DIR\n"
                   f"cp {archive} \"$5\"\n")
    npm.chmod(0o755)
    return str(bin_dir)


def test_the_fits_viewer_is_unpacked_as_a_galaxy_plugin(tmp_path, monkeypatch):
    import visualizations
    monkeypatch.setenv("ASTRO_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", fake_npm(tmp_path) + os.pathsep + os.environ["PATH"])
    root, problem = visualizations.plugins_directory()
    assert problem is None
    assert os.path.isfile(os.path.join(root, "aladin", "static", "aladin.xml"))
    assert os.path.isfile(os.path.join(root, "aladin", "static", "index.js"))
    monkeypatch.setenv("PATH", "/nonexistent")  # fetched once: no npm needed again
    assert visualizations.plugins_directory() == (root, None)


def test_a_package_without_the_plugin_xml_is_refused(tmp_path, monkeypatch):
    import visualizations
    monkeypatch.setenv("ASTRO_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", fake_npm(tmp_path, with_xml=False) + os.pathsep
                       + os.environ["PATH"])
    root, problem = visualizations.plugins_directory()
    assert root is None and "holds no static/aladin.xml" in problem
    monkeypatch.setenv("PATH", "/nonexistent")
    assert visualizations.plugins_directory() == (
        None, "npm not found: the FITS viewer is not installed")
