"""The suite's own package (pyproject.toml), installed for the Galaxy servers of the harness.

The tools require `astro-source-extraction` and call its commands (astro-sep-extract, ...).
The harness installs it from this clone's scripts/ into a folder named after a hash of its
sources, next to the cached venv: every clone with the same sources shares one install, and
a clone with changed scripts never runs another clone's code. Galaxy, its local jobs and
the Pulsar server get that folder's bin/ first on PATH and the folder on PYTHONPATH.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE")
KEEP_INSTALLS = 4  # older installs (of earlier sources) are removed


def source_files():
    """Every file the package is built from, relative to the repository."""
    names = list(BUILD_FILES)
    for name in sorted(os.listdir(os.path.join(REPO, "scripts"))):
        if os.path.isfile(os.path.join(REPO, "scripts", name)):
            names.append(os.path.join("scripts", name))
    return names


def source_hash():
    digest = hashlib.sha256()
    for name in source_files():
        digest.update(name.encode() + b"\0")
        with open(os.path.join(REPO, name), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def cache_dir():
    return os.environ.get("ASTRO_SUITE_CACHE") or os.path.dirname(sys.prefix)


def ensure_package():
    """The folder holding the installed package of this clone's sources (installed now if
    no earlier run installed the same sources)."""
    target = os.path.join(cache_dir(), f"package-{source_hash()}")
    if os.path.exists(os.path.join(target, ".complete")):
        return target
    os.makedirs(cache_dir(), exist_ok=True)
    # built beside its final place, so that the last step is one rename
    with tempfile.TemporaryDirectory(prefix="building-", dir=cache_dir()) as tmp:
        source = os.path.join(tmp, "source")  # a copy: the build leaves nothing in the clone
        for name in source_files():
            os.makedirs(os.path.dirname(os.path.join(source, name)), exist_ok=True)
            shutil.copy(os.path.join(REPO, name), os.path.join(source, name))
        staging = os.path.join(tmp, "install")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check",
                        "--target", staging, source], check=True)
        open(os.path.join(staging, ".complete"), "w").close()
        try:
            os.rename(staging, target)
        except OSError:  # another run installed the same sources meanwhile
            if not os.path.exists(os.path.join(target, ".complete")):
                raise
    remove_old_installs(target)
    return target


def remove_old_installs(current):
    folder = os.path.dirname(current)
    installs = sorted((os.path.join(folder, name) for name in os.listdir(folder)
                       if name.startswith("package-") and os.path.join(folder, name) != current),
                      key=os.path.getmtime, reverse=True)
    for old in installs[KEEP_INSTALLS - 1:]:
        shutil.rmtree(old, ignore_errors=True)


def package_env(target, path=None):
    """PATH and PYTHONPATH that give a process (Galaxy, Pulsar, a job) the package."""
    path = os.environ.get("PATH", "") if path is None else path
    return {"PATH": os.path.join(target, "bin") + os.pathsep + path, "PYTHONPATH": target}
