"""What the harness's servers (Galaxy, Pulsar) share: each runs as its own process group,
is used in a `with` block so that it is always stopped, and says what it does."""

import os
import signal
import subprocess


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
