"""The harness: a server started by ./suite is stopped on SIGINT, SIGTERM and SIGHUP,
whatever started the command (a `&` job ignores SIGINT), and never left behind."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO

# A stand-in for Galaxy with the harness's own start/stop code: a process group that
# would outlive its parent, as gunicorn does.
SERVER = textwrap.dedent("""
    import subprocess, sys, time
    sys.path.insert(0, {harness!r})
    import galaxy_server, suite

    class FakeGalaxy(galaxy_server.GalaxyServer):
        def start(self):
            self.process = subprocess.Popen(["sleep", "600"], start_new_session=True)
            print(self.process.pid, flush=True)
            return self

    galaxy_server.stop_on_signals()
    server = FakeGalaxy("{workdir}", port=1, quiet=True)
    with server:
        suite.wait_until_interrupted(server)
    print("stopped", flush=True)
""")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is not alive
        return handle.read().split()[2] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_the_server_is_stopped_on_every_signal(tmp_path, sig):
    code = SERVER.format(harness=os.path.join(REPO, "harness"), workdir=tmp_path)
    # like `./suite serve &` from a script: SIGINT ignored when the command starts
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                          signal.SIG_IGN))
    child = int(parent.stdout.readline())
    assert alive(child)
    time.sleep(0.3)
    parent.send_signal(sig)
    assert parent.wait(timeout=40) == 0
    assert "stopped" in parent.stdout.read()
    deadline = time.time() + 10
    while alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not alive(child)


# The test command's planemo runs go through suite.run() in threads: a stop signal must end
# them at once, not wait until they finish.
PARALLEL = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {harness!r})
    import galaxy_server, suite
    galaxy_server.stop_on_signals()
    start = time.time()
    try:
        suite.in_parallel(lambda _: suite.run(["sleep", "300"]), [1, 2])
    except galaxy_server.Stop:
        print("stopped after", round(time.time() - start), flush=True)
""")


def test_a_stop_signal_ends_the_commands_running_in_parallel(tmp_path):
    code = PARALLEL.format(harness=os.path.join(REPO, "harness"))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    sleepers = []
    while len(sleepers) < 2 and time.time() < deadline:  # both commands started
        time.sleep(0.2)
        sleepers = [int(pid) for pid in os.listdir("/proc") if pid.isdigit()
                    and _parent_of(int(pid)) == parent.pid]
    assert len(sleepers) == 2
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) == 0
    assert "stopped after" in parent.stdout.read()
    assert not any(alive(pid) for pid in sleepers)


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_the_celery_result_database_has_its_folder_before_the_worker_starts(tmp_path):
    """The Celery worker starts beside Galaxy and opens its result database at once: its
    folder must exist before Galaxy creates it (else the worker stopped with "unable to open
    database file" and `./suite serve` left every upload queued)."""
    import yaml
    sys.path.insert(0, os.path.join(REPO, "harness"))
    import galaxy_server
    galaxy_server.write_config(str(tmp_path / "galaxy"), 8080)
    with open(tmp_path / "galaxy" / "galaxy.yml") as handle:
        backend = yaml.safe_load(handle)["galaxy"]["celery_conf"]["result_backend"]
    database = backend.split("sqlite:///", 1)[1]
    assert os.path.isdir(os.path.dirname(database))
    assert os.path.dirname(database) == str(tmp_path / "galaxy" / "data")


def test_a_port_in_use_is_refused_with_a_clear_line():
    import socket
    sys.path.insert(0, os.path.join(REPO, "harness"))
    import galaxy_server
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} on 127.0.0.1 is already in use"):
            galaxy_server.require_free_port(port)
    galaxy_server.require_free_port(port)  # free again


def test_a_fits_viewer_that_cannot_open_fails_the_browser_check(monkeypatch, tmp_path):
    sys.path.insert(0, os.path.join(REPO, "harness"))
    import browser_check
    monkeypatch.setattr(browser_check, "chromium", lambda: "/bin/true")
    pages = {path: expected for path, expected in browser_check.PAGES.values()}
    monkeypatch.setattr(browser_check, "render",
                        lambda binary, url, shot: " ".join(pages[url.split("8080", 1)[1]]))
    monkeypatch.setattr(browser_check, "help_pictures", lambda url: [])

    def no_driver(url, dataset, shot):
        raise FileNotFoundError("chromedriver")
    monkeypatch.setattr(browser_check, "open_fits_viewer", no_driver)
    ok, detail = browser_check.check("http://127.0.0.1:8080", str(tmp_path), ("abc", "x.fits"))
    assert not ok and "the FITS viewer could not be opened (chromedriver)" in detail
    monkeypatch.setattr(browser_check, "open_fits_viewer", lambda url, dataset, shot: "")
    ok, detail = browser_check.check("http://127.0.0.1:8080", str(tmp_path), ("abc", "x.fits"))
    assert ok and detail.endswith("the FITS viewer on x.fits")
