"""Start and stop a real Pulsar server (pulsar-app from PyPI) on 127.0.0.1.

Pulsar is the job server Galaxy sends jobs to when they must run where Galaxy's files are
not: it stages each job's inputs in its own staging directory (fetched from Galaxy over
HTTP, `remote_transfer`), runs the command there and sends the outputs back. The harness
runs one beside the local Galaxy so that the suite's tools are tested on such a
destination; the job configuration that routes jobs to it is galaxy_server.job_conf().
"""

import os
import secrets
import sys
import urllib.error
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from processes import launch, Server, stop_groups, wait_until_up  # noqa: E402

START_TIMEOUT = 120  # seconds


def write_pulsar_config(workdir, port, token, concurrent_jobs=2):
    """server.ini and app.yml of a Pulsar whose jobs and staging live in workdir."""
    os.makedirs(workdir, exist_ok=True)
    staging = os.path.join(workdir, "staging")
    app = {
        "private_token": token,
        "staging_directory": staging,
        "persistence_directory": os.path.join(workdir, "persisted_data"),
        "tool_dependency_dir": os.path.join(workdir, "dependencies"),
        "conda_auto_init": False,
        "conda_auto_install": False,
        "managers": {"_default_": {"type": "queued_python",
                                   "num_concurrent_jobs": concurrent_jobs}},
    }
    with open(os.path.join(workdir, "app.yml"), "w") as handle:
        yaml.safe_dump(app, handle, sort_keys=True)
    ini = os.path.join(workdir, "server.ini")
    with open(ini, "w") as handle:
        handle.write(f"[server:main]\nhost = 127.0.0.1\nport = {port}\n\n"
                     "[app:main]\npaste.app_factory = pulsar.web.wsgi:app_factory\n"
                     "app_config = %(here)s/app.yml\n")
    return ini, staging


class PulsarServer(Server):
    """A Pulsar server process; use as a context manager so it is always stopped."""

    label = "pulsar"

    def __init__(self, workdir, port, env=None, quiet=False):
        self.workdir = os.path.abspath(workdir)
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.token = secrets.token_hex(16)
        self.env = env or {}
        self.log_path = os.path.join(self.workdir, "pulsar.log")
        self.staging_directory = None
        self.process = None
        self.quiet = quiet

    def start(self):
        ini, self.staging_directory = write_pulsar_config(self.workdir, self.port, self.token)
        env = dict(os.environ)
        env.update(self.env)
        command = [os.path.join(sys.prefix, "bin", "pulsar-serve"), ini]
        self._say(f"starting Pulsar on {self.url} (staging: {self.staging_directory}) ...")
        self.process = launch(command, self.workdir, env, open(self.log_path, "w"))
        try:
            seconds = wait_until_up("Pulsar", self._probe, self.process, self.log_path,
                                    START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self._say(f"Pulsar is up after {seconds:.0f} s")
        return self

    def _probe(self):
        try:
            urllib.request.urlopen(self.url, timeout=5)
        except urllib.error.HTTPError:  # any HTTP answer: the server is up
            pass

    def stop(self):
        if stop_groups([self.process]):
            self._say("Pulsar stopped")
