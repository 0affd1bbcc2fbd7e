"""Start and stop a real local Galaxy (from PyPI) that serves this suite's tools.

Galaxy runs under gunicorn on a free 127.0.0.1 port (gravity refuses to run as root), with
the venv first on PATH and VIRTUAL_ENV set, so that jobs import sep, astropy and the rest
from the same venv. A user and its API key are created through the API.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOTSTRAP_KEY = "astro-suite-bootstrap-key"
USER_EMAIL = "admin@example.org"
USER_NAME = "admin"
USER_PASSWORD = "astro-suite-admin"
TOOL_SECTION = ("astronomy_source_extraction", "Astronomy: source extraction")
START_TIMEOUT = 300  # seconds; a first start with an empty database takes about a minute


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tool_files():
    """Every Galaxy tool XML in tools/ (macro files are skipped)."""
    tools_dir = os.path.join(REPO, "tools")
    names = []
    for name in sorted(os.listdir(tools_dir)):
        if name.endswith(".xml"):
            with open(os.path.join(tools_dir, name)) as handle:
                if "<tool " in handle.read():
                    names.append(name)
    return names


def write_job_conf(path, job_env):
    """A local job runner whose jobs get job_env (Galaxy's jobs do not inherit the
    server's environment)."""
    lines = ["runners:", "  local:", "    load: galaxy.jobs.runners.local:LocalJobRunner",
             "    workers: 4", "execution:", "  default: local", "  environments:",
             "    local:", "      runner: local", "      env:"]
    for name, value in sorted(job_env.items()):
        lines += [f"        - name: {name}", f"          value: {json.dumps(value)}"]
    if not job_env:
        lines[-1] = "      env: []"
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def static_folder(workdir):
    """Galaxy's own static files with the suite's pictures added to images/ (the example
    pictures of the tools' help, /static/images/<name>) and the suite's welcome page, as
    links in one folder."""
    import importlib.util
    base = importlib.util.find_spec("galaxy.webapps.base").submodule_search_locations[0]
    galaxy_static = os.path.join(base, "static")
    folder = os.path.join(workdir, "static")
    images = os.path.join(folder, "images")
    os.makedirs(images, exist_ok=True)
    links = [(os.path.join(galaxy_static, name), os.path.join(folder, name))
             for name in os.listdir(galaxy_static) if name not in ("images", "welcome.html")]
    links.append((os.path.join(REPO, "static", "welcome.html"),
                  os.path.join(folder, "welcome.html")))  # the suite's welcome page
    for source in (os.path.join(galaxy_static, "images"), os.path.join(REPO, "static", "images")):
        links += [(os.path.join(source, name), os.path.join(images, name))
                  for name in os.listdir(source)]
    for source, link in links:
        if not os.path.lexists(link):
            os.symlink(source, link)
    return folder


def write_config(workdir, port, job_env=None):
    """galaxy.yml, job_conf.yml and tool_conf.xml for a server whose state lives in
    workdir."""
    os.makedirs(workdir, exist_ok=True)
    write_job_conf(os.path.join(workdir, "job_conf.yml"), job_env or {})
    entries = "\n".join(f'        <tool file="{name}"/>' for name in tool_files())
    with open(os.path.join(workdir, "tool_conf.xml"), "w") as handle:
        handle.write(f"""<?xml version="1.0"?>
<toolbox tool_path="{REPO}/tools">
    <section id="{TOOL_SECTION[0]}" name="{TOOL_SECTION[1]}">
{entries}
    </section>
    <section id="collection_operations" name="Collection operations">
        <tool file="${{model_tools_path}}/extract_dataset.xml"/>
    </section>
</toolbox>
""")
    config = {
        "data_dir": os.path.join(workdir, "data"),
        "tool_config_file": os.path.join(workdir, "tool_conf.xml"),
        "tool_data_path": os.path.join(workdir, "tool-data"),
        "tool_test_data_directories": os.path.join(REPO, "test-data"),
        "job_config_file": os.path.join(workdir, "job_conf.yml"),
        "static_dir": static_folder(workdir),
        "admin_users": USER_EMAIL,
        "bootstrap_admin_api_key": BOOTSTRAP_KEY,
        "conda_auto_init": False,
        "conda_auto_install": False,
        "cleanup_job": "onsuccess",
        "galaxy_infrastructure_url": f"http://127.0.0.1:{port}",
        "allow_user_creation": True,
        "require_login": False,
    }
    with open(os.path.join(workdir, "galaxy.yml"), "w") as handle:
        handle.write("galaxy:\n")
        for key, value in config.items():
            handle.write(f"  {key}: {json.dumps(value)}\n")


def api(url, path, key=None, data=None, method=None, timeout=30):
    request = urllib.request.Request(
        url + path, data=json.dumps(data).encode() if data is not None else None,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", **({"x-api-key": key} if key else {})})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read() or b"null")


def wait_until_up(url, process, log_path, timeout=START_TIMEOUT):
    start = time.time()
    while time.time() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"Galaxy exited with status {process.returncode}; "
                               f"see {log_path}")
        try:
            api(url, "/api/version", timeout=5)
            return time.time() - start
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(1)
    raise RuntimeError(f"Galaxy did not answer within {timeout} s; see {log_path}")


def user_api_key(url):
    """Create (or find) the admin user and return a fresh API key for it."""
    users = api(url, f"/api/users?f_email={USER_EMAIL}", key=BOOTSTRAP_KEY)
    if users:
        user_id = users[0]["id"]
    else:
        user_id = api(url, "/api/users", key=BOOTSTRAP_KEY,
                      data={"username": USER_NAME, "email": USER_EMAIL,
                            "password": USER_PASSWORD})["id"]
    return api(url, f"/api/users/{user_id}/api_key", key=BOOTSTRAP_KEY, data={})


def import_workflows(url, key, paths, publish=True):
    """Import gxformat2 workflows into the user's account (published: visible to all)."""
    import yaml
    names = []
    for path in paths:
        with open(path) as handle:
            workflow = yaml.safe_load(handle)
        api(url, "/api/workflows", key=key, data={"workflow": workflow, "publish": publish,
                                                  "importable": publish}, timeout=120)
        names.append(workflow.get("label", os.path.basename(path)))
    return names


class Stop(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as Ctrl-C does (the server's `with` block stops Galaxy)."""


def stop_on_signals():
    """SIGINT, SIGTERM and SIGHUP all end the command cleanly, whatever started it: a
    command run with `&` inherits an ignored SIGINT, and `kill` sends SIGTERM."""
    def handler(signum, frame):
        raise Stop(f"stopped by signal {signal.Signals(signum).name}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


class GalaxyServer:
    """A Galaxy server process; use as a context manager so it is always stopped."""

    def __init__(self, workdir, port=None, extra_env=None, quiet=False):
        self.workdir = os.path.abspath(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.log_path = os.path.join(self.workdir, "galaxy.log")
        self.process = None
        self.key = None
        self.quiet = quiet

    def start(self):
        write_config(self.workdir, self.port, self.extra_env)
        venv = sys.prefix
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update({
            "PATH": os.path.join(venv, "bin") + os.pathsep + env.get("PATH", ""),
            "VIRTUAL_ENV": venv,
            "GALAXY_CONFIG_FILE": os.path.join(self.workdir, "galaxy.yml"),
            "PYTHONUNBUFFERED": "1",
        })
        command = [
            os.path.join(venv, "bin", "gunicorn"),
            "galaxy.webapps.galaxy.fast_factory:factory()",
            "--timeout", "600", "-k", "galaxy.webapps.galaxy.workers.Worker",
            "-b", f"127.0.0.1:{self.port}", "--workers=1",
            "--config", "python:galaxy.web_stack.gunicorn_config", "--preload",
        ]
        self._say(f"starting Galaxy on {self.url} (log: {self.log_path}) ...")
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        try:  # a signal while Galaxy starts must not leave it running
            seconds = wait_until_up(self.url, self.process, self.log_path)
            self.key = user_api_key(self.url)
        except BaseException:
            self.stop()
            raise
        self._say(f"Galaxy is up after {seconds:.0f} s")
        return self

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self._say("Galaxy stopped")

    def keep_log(self, destination):
        if os.path.exists(self.log_path):
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.copy(self.log_path, destination)
            self._say(f"Galaxy's log kept at {destination}")

    def _say(self, message):
        if not self.quiet:
            print(f"[galaxy] {message}", flush=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
