"""The command-line layer every script of the suite shares: errors, the parser, the checks
of parameter values, progress lines and safe writing of outputs.

One style of parameter check: argparse `type=` helpers (positive_int, positive_float,
non_negative_float, between, finite_float, existing_file) whose messages name the option and
the value, and a parser whose error() raises the suite's one-line error. The scripts import
the data layers beside it: astro_images, astro_catalogs, astro_ellipses, astro_regions and
astro_pictures.

Imports of astropy, scipy, matplotlib and sep are made inside the functions that need them,
throughout the suite: a job pays only for what its outputs use (a Galaxy user mapping a
tool over 500 stamps pays the start-up 500 times; bench/bench_startup.py).
"""

import argparse
import math
import os
import re
import sys
import tempfile
import traceback
import warnings

# A user error: the script prints "Error: <message>" on one line and exits with this status.
USAGE_EXIT = 2
SERVICE_EXIT = 3


class ToolError(Exception):
    """Bad input or parameters; the message is shown to the user as is."""

    exit_status = USAGE_EXIT


class ServiceError(ToolError):
    """A remote service failed (network down, HTTP error, bad answer)."""

    exit_status = SERVICE_EXIT


def run_cli(main, argv=None):
    """Run main(argv) and turn failures into a one-line message and a non-zero exit."""
    # astropy's notes on non-standard header cards (old ESO keywords...) are not errors
    warnings.filterwarnings("ignore", message=".*(non-standard convention|keyword).*")
    try:
        main(argv)
    except ToolError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(err.exit_status)
    except MemoryError:
        print("Error: out of memory; try a smaller image or crop it first", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # a bug: keep the traceback, but end with a readable line
        traceback.print_exc()
        print(f"Error: unexpected failure ({type(err).__name__}: {err})", file=sys.stderr)
        sys.exit(1)


def log(message):
    """Progress and summary lines go to stdout (Galaxy shows them as the job's output)."""
    print(message, flush=True)


# --------------------------------------------------------------------------------------
# The parser and the checks of parameter values
# --------------------------------------------------------------------------------------

_ARGPARSE_MESSAGE = re.compile(r"^argument ([^:]+): (.*)$")


class SuiteParser(argparse.ArgumentParser):
    """argparse, with its errors raised as the suite's one-line ToolError."""

    def error(self, message):
        # "argument --nbox: must be positive (got 0)" -> "--nbox must be positive (got 0)"
        match = _ARGPARSE_MESSAGE.match(message)
        if match:
            option, text = match.group(1).split("/")[0], match.group(2)
            message = f"{option} {text}" if text.startswith("must") else f"{option}: {text}"
        raise ToolError(message)


def new_parser(description):
    return SuiteParser(description=description.strip().splitlines()[0])


def _number(text, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {'a whole number' if kind is int else 'a number'} (got '{text}')"
        ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
    return value


def finite_float(text):
    """Any finite number (NaN and infinity are refused)."""
    return _number(text, float)


def _signed(kind, allow_zero):
    """A type helper for positive (or non-negative) numbers of a kind."""
    def check(text):
        value = _number(text, kind)
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(
                f"must {'not be negative' if allow_zero else 'be positive'} (got {value})")
        return value
    return check


positive_float = _signed(float, allow_zero=False)
non_negative_float = _signed(float, allow_zero=True)
positive_int = _signed(int, allow_zero=False)
non_negative_int = _signed(int, allow_zero=True)


def between(low, high, kind=float, unit=""):
    """A type helper for values in [low, high]."""
    def check(text):
        value = _number(text, kind)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"must be between {low:g} and {high:g}{unit} (got {value})")
        return value
    check.__name__ = f"between_{low:g}_{high:g}"
    return check


def fraction(text):
    """A number from 0 to 1."""
    return between(0, 1)(text)


def existing_file(text):
    """A path to a file that exists."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"file '{text}' not found")
    return text


def require_file(path, what):
    """A clear error for a missing input file (instead of a traceback)."""
    if not os.path.isfile(path):
        raise ToolError(f"{what}: file '{path}' not found")


# --------------------------------------------------------------------------------------
# Outputs: a failed job leaves nothing that looks like a result
# --------------------------------------------------------------------------------------

def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


class Outputs:
    """Output files are written under temporary names beside their final ones and moved
    into place only when the whole job succeeded (commit); otherwise they are removed.

        with Outputs() as out:
            write_catalog(out.path(args.catalog), catalog)
    """

    def __init__(self):
        self._pending = []

    def path(self, final):
        """A temporary name for `final` (None stays None)."""
        if final is None:
            return None
        folder, name = os.path.split(os.path.abspath(final))
        try:
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part",
                                                 dir=folder)
        except OSError as err:
            raise ToolError(f"cannot write the output '{final}' ({err.strerror})") from None
        os.close(handle)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 is not what a result needs
        self._pending.append((temporary, final))
        return temporary

    def __enter__(self):
        return self

    def __exit__(self, kind, value, trace):
        if kind is None:
            for temporary, final in self._pending:
                os.replace(temporary, final)
        else:
            for temporary, _ in self._pending:
                if os.path.exists(temporary):
                    os.remove(temporary)
        return False
