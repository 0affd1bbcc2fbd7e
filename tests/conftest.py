"""Shared fixtures: the scripts folder on sys.path, test-data paths, and a CLI runner."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "scripts")
TEST_DATA = os.path.join(REPO, "test-data")
sys.path.insert(0, SCRIPTS)


def data_path(name):
    return os.path.join(TEST_DATA, name)


class CliResult:
    def __init__(self, status, out, err):
        self.status, self.out, self.err = status, out, err


@pytest.fixture
def run_script(capsys):
    """Run a script's main() through run_cli; return exit status, stdout and stderr."""
    from astro_common import run_cli

    def runner(module, argv):
        status = 0
        try:
            run_cli(module.main, [str(a) for a in argv])
        except SystemExit as exit_:
            status = exit_.code
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)
    return runner
