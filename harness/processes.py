"""What the harness's servers (Galaxy, Pulsar) share: each runs as its own process group,
is used in a `with` block so that it is always stopped, and says what it does."""

import os
import signal
import subprocess
import time
import urllib.error


def stop_groups(processes, timeout=30):
    """SIGTERM to the process group of each process still running, SIGKILL to a group that
    has not ended after `timeout` seconds; True if any was running."""
    running = [p for p in processes if p is not None and p.poll() is None]
    for process in running:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in running:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    return bool(running)


def launch(command, cwd, env, log):
    """A server process in its own process group (stop_groups ends it with its children),
    its output appended to the open file `log`."""
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_until_up(name, probe, process, log_path, timeout):
    """Seconds until probe() returns without a connection error; a clear error when the
    process exits first or the time runs out."""
    start = time.time()
    while time.time() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}; "
                               f"see {log_path}")
        try:
            probe()
            return time.time() - start
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(1)
    raise RuntimeError(f"{name} did not answer within {timeout} s; see {log_path}")


class Server:
    """A server of the harness: subclasses define start(), stop() and `label`."""

    label = "server"
    quiet = False

    def _say(self, message):
        if not self.quiet:
            print(f"[{self.label}] {message}", flush=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
