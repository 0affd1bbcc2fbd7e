"""Start and stop a real local Galaxy (from PyPI) that serves this suite's tools.

Galaxy runs under gunicorn on a free 127.0.0.1 port (gravity refuses to run as root), with
the venv first on PATH and VIRTUAL_ENV set, so that jobs import sep, astropy and the rest
from the same venv. A user and its API key are created through the API.
"""

import json
import os
import re
import shutil
import signal
import socket
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from processes import launch, Server, stop_groups, wait_until_up  # noqa: E402
from suite_package import ensure_package, package_env  # noqa: E402
from visualizations import plugins_directory  # noqa: E402

HARNESS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HARNESS)
BOOTSTRAP_KEY = "astro-suite-bootstrap-key"
USER_EMAIL = "admin@example.org"
USER_NAME = "admin"
USER_PASSWORD = "astro-suite-admin"
PULSAR_USER = "pulsar-tests@example.org"  # the user whose jobs the tests send to Pulsar
PULSAR_USER_NAME = "pulsar-tests"
TOOL_SECTION = ("astronomy_source_extraction", "Astronomy: source extraction")
START_TIMEOUT = 300  # seconds; a first start with an empty database takes about a minute


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_free_port(port):
    """Stop with a clear line when something already listens on the port: a Galaxy left
    there would answer our start-up checks in place of the new one."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"port {port} on 127.0.0.1 is already in use (another Galaxy? "
                               "stop it or choose another port)") from None


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


def tool_ids():
    """The ids of the suite's tools (the id attribute of each tool XML)."""
    ids = []
    for name in tool_files():
        with open(os.path.join(REPO, "tools", name)) as handle:
            ids.append(re.search(r'<tool\s+id="([^"]+)"', handle.read()).group(1))
    return ids


def job_env_entries(job_env, package=None):
    """Galaxy job environment entries: job_env's values, and the suite's package first on
    PATH and PYTHONPATH (the shell of the job script expands $PATH)."""
    entries = [{"name": name, "value": value} for name, value in sorted(job_env.items())]
    if package:
        entries += [{"name": "PATH", "value": f'"{os.path.join(package, "bin")}:$PATH"',
                     "raw": True},
                    {"name": "PYTHONPATH", "value": package}]
    return entries


def job_conf(job_env, package=None, pulsar=None):
    """Galaxy's job configuration: a local runner whose jobs get job_env (Galaxy's jobs do
    not inherit the server's environment) and the suite's package; with pulsar (a dict:
    url, token, user: the e-mail whose jobs go there, or "*" for every user) also a Pulsar
    REST destination with remote staging, and a rule that sends the suite's tools there."""
    env = job_env_entries(job_env, package)
    conf = {"runners": {"local": {"load": "galaxy.jobs.runners.local:LocalJobRunner",
                                  "workers": 4}},
            "execution": {"default": "local",
                          "environments": {"local": {"runner": "local", "env": env}}}}
    if pulsar:
        conf["runners"]["pulsar"] = {"load": "galaxy.jobs.runners.pulsar:PulsarRESTJobRunner"}
        environments = conf["execution"]["environments"]
        environments["pulsar"] = {
            "runner": "pulsar", "url": pulsar["url"], "private_token": pulsar["token"],
            # Pulsar fetches the inputs from Galaxy and sends the outputs back over HTTP:
            # nothing of Galaxy's file system is visible to the job
            "default_file_action": "remote_transfer",
            "dependency_resolution": "remote", "rewrite_parameters": True, "env": env,
            # each job's folder stays in Pulsar's staging directory: the harness checks
            # there that the job ran and wrote its outputs on the Pulsar side
            "cleanup_job": "never"}
        environments["astro_route"] = {
            "runner": "dynamic", "type": "python", "function": "astro_suite_route",
            "rules_module": "astro_suite_job_rules", "pulsar_user": pulsar["user"],
            "suite_tools": ",".join(tool_ids())}
        conf["execution"]["default"] = "astro_route"
    return conf


def write_job_conf(path, job_env, package=None, pulsar=None):
    import yaml
    with open(path, "w") as handle:
        yaml.safe_dump(job_conf(job_env, package, pulsar), handle, sort_keys=False)


def static_folder(workdir, plugins=None):
    """Galaxy's own static files with the suite's pictures added to images/ (the example
    pictures of the tools' help, /static/images/<name>), the suite's welcome page and the
    visualization plugins of the folder `plugins` (served at
    /static/plugins/visualizations/<name>/static/), as links in one folder."""
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
    if plugins:
        os.makedirs(os.path.join(folder, "plugins", "visualizations"), exist_ok=True)
        links += [(os.path.join(plugins, name),
                   os.path.join(folder, "plugins", "visualizations", name))
                  for name in os.listdir(plugins)]
    for source, link in links:
        if not os.path.lexists(link):
            os.symlink(source, link)
    return folder


def write_config(workdir, port, job_env=None, package=None, pulsar=None, plugins=None):
    """galaxy.yml, job_conf.yml and tool_conf.xml for a server whose state lives in
    workdir; plugins: a folder of visualization plugins (the FITS viewer)."""
    # the data folder now: the Celery worker, started beside Galaxy, opens its result
    # database there and stops at once ("unable to open database file") if it is missing
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    write_job_conf(os.path.join(workdir, "job_conf.yml"), job_env or {}, package, pulsar)
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
        "static_dir": static_folder(workdir, plugins),
        "admin_users": USER_EMAIL,
        "bootstrap_admin_api_key": BOOTSTRAP_KEY,
        "conda_auto_init": False,
        "conda_auto_install": False,
        "cleanup_job": "onsuccess",
        "galaxy_infrastructure_url": f"http://127.0.0.1:{port}",
        "allow_user_creation": True,
        "require_login": False,
        # Uploads and metadata as Celery tasks, run by a Celery worker beside gunicorn (as
        # a production Galaxy does; the broker is Galaxy's own SQLite control database):
        # its pre-started processes spare every job the 4-5 s of CPU that a new Python
        # importing Galaxy costs (data_fetch.py, metadata/set.py), most of a test job's
        # time on a 2-core machine
        "enable_celery_tasks": True,
        "metadata_strategy": "directory_celery",
        "celery_conf": {"result_backend": "db+sqlite:///"
                        + os.path.join(workdir, "data", "results.sqlite"),
                        "task_routes": {"galaxy.fetch_data": "galaxy.external",
                                        "galaxy.set_job_metadata": "galaxy.external"}},
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


def user_api_key(url, email=USER_EMAIL, name=USER_NAME):
    """Create (or find) a user and return a fresh API key for it."""
    users = api(url, f"/api/users?f_email={email}", key=BOOTSTRAP_KEY)
    if users:
        user_id = users[0]["id"]
    else:
        user_id = api(url, "/api/users", key=BOOTSTRAP_KEY,
                      data={"username": name, "email": email,
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


class GalaxyServer(Server):
    """A Galaxy server process; use as a context manager so it is always stopped."""

    label = "galaxy"

    def __init__(self, workdir, port=None, extra_env=None, quiet=False, pulsar=None,
                 pulsar_user=PULSAR_USER):
        """pulsar: a running PulsarServer that the suite's tools are sent to, for the jobs
        of pulsar_user (by default the second user this server creates, whose API key is
        `pulsar_key`; "*": every user)."""
        self.workdir = os.path.abspath(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.log_path = os.path.join(self.workdir, "galaxy.log")
        self.process = None
        self.celery = None  # the Celery worker (uploads and metadata)
        self.key = None
        self.pulsar = pulsar
        self.pulsar_user = pulsar_user
        self.pulsar_key = None
        self.quiet = quiet

    def start(self):
        require_free_port(self.port)
        package = ensure_package()
        pulsar = None
        if self.pulsar:
            pulsar = {"url": self.pulsar.url, "token": self.pulsar.token,
                      "user": self.pulsar_user}
        plugins, problem = plugins_directory()
        if problem:
            self._say(problem)
        write_config(self.workdir, self.port, self.extra_env, package, pulsar, plugins)
        venv = sys.prefix
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(package_env(package, os.path.join(venv, "bin") + os.pathsep
                               + env.get("PATH", "")))
        env["PYTHONPATH"] += os.pathsep + HARNESS  # the job rules (astro_suite_job_rules)
        env.update({
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
        self.process = launch(command, self.workdir, env, log)
        try:  # a signal while Galaxy starts must not leave it running
            self.celery = launch(
                [os.path.join(venv, "bin", "celery"), "--app", "galaxy.celery", "worker",
                 "--concurrency", "2", "--loglevel", "INFO", "--pool", "threads",
                 "--queues", "celery,galaxy.internal,galaxy.external"],
                self.workdir, env, log)
            seconds = wait_until_up("Galaxy", lambda: api(self.url, "/api/version", timeout=5),
                                    self.process, self.log_path, START_TIMEOUT)
            if self.celery.poll() is not None:  # uploads and metadata would wait for ever
                raise RuntimeError(f"Galaxy's Celery worker stopped (exit status "
                                   f"{self.celery.returncode}); see {self.log_path}")
            self.key = user_api_key(self.url)
            if self.pulsar:
                self.pulsar_key = user_api_key(self.url, PULSAR_USER, PULSAR_USER_NAME)
        except BaseException:
            self.stop()
            raise
        self._say(f"Galaxy is up after {seconds:.0f} s")
        return self

    def stop(self):
        if stop_groups([self.process, self.celery]):
            self._say("Galaxy stopped")

    def keep_log(self, destination):
        if os.path.exists(self.log_path):
            os.makedirs(os.path.dirname(destination), exist_ok=True)
            shutil.copy(self.log_path, destination)
            self._say(f"Galaxy's log kept at {destination}")
