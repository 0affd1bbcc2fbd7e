"""The FITS viewer of the harness's Galaxy: Aladin Lite as Galaxy's visualization plugin.

Galaxy from PyPI ships no visualization plugins, so "Visualize" on a FITS dataset finds
nothing. galaxyproject's galaxy-visualizations publishes its plugins on the npm registry;
the FITS one (Aladin Lite, what usegalaxy.eu offers) is @galaxyproject/aladin: its package
holds static/aladin.xml (the plugin's configuration: FITS datasets) and the built viewer.
It is fetched once with `npm pack` into the cache next to the venv and given to Galaxy as a
plugin directory (visualization_plugins_directory) whose static files Galaxy serves under
/static/plugins/visualizations/aladin/static/.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

PACKAGE, VERSION = "@galaxyproject/aladin", "0.0.1"
NAME = "aladin"  # the plugin's folder name = its XML's name


def cache_dir():
    return os.environ.get("ASTRO_SUITE_CACHE") or os.path.dirname(sys.prefix)


def plugins_directory():
    """The folder holding the plugin folder aladin/ (fetched now if needed), or None with
    the reason when npm is missing or the registry does not answer."""
    root = os.path.join(cache_dir(), f"visualizations-{NAME}-{VERSION}")
    if os.path.isfile(os.path.join(root, NAME, "static", f"{NAME}.xml")):
        return root, None
    npm = shutil.which("npm")
    if not npm:
        return None, "npm not found: the FITS viewer is not installed"
    os.makedirs(cache_dir(), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="building-", dir=cache_dir()) as tmp:
        fetched = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent",
                                  "--pack-destination", tmp], capture_output=True, text=True,
                                 timeout=300)
        archives = [name for name in os.listdir(tmp) if name.endswith(".tgz")]
        if fetched.returncode != 0 or not archives:
            return None, f"npm pack {PACKAGE}@{VERSION} failed: {fetched.stderr.strip()[-300:]}"
        staging = os.path.join(tmp, "root")
        with tarfile.open(os.path.join(tmp, archives[0])) as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.startswith("package/static/"):
                    member.name = os.path.join(NAME, "static", member.name[len("package/static/"):])
                    archive.extract(member, staging, filter="data")
        if not os.path.isfile(os.path.join(staging, NAME, "static", f"{NAME}.xml")):
            return None, f"{PACKAGE}@{VERSION} holds no static/{NAME}.xml"
        try:
            os.rename(staging, root)
        except OSError:  # another run fetched it meanwhile
            pass
    return root, None
