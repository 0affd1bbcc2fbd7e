"""The console commands of the installed package (pyproject.toml [project.scripts]).

Each command runs one script's main() exactly as `python scripts/<name>.py` does: the
package's folder first on sys.path (the scripts import their shared modules by plain name),
then the script's own error handling (astro_common.run_cli).
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL_SCRIPTS = ("catalog_export", "catalog_join", "catalog_to_regions", "desi_cutout",
                "ellipse_overlay", "forced_photometry", "mask_build", "morphology",
                "sep_extract", "sky_compute")


def run_script(name, argv=None):
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    from astro_common import run_cli
    run_cli(importlib.import_module(name).main, argv)


def _command(name):
    def command():
        run_script(name)
    command.__name__ = name
    command.__doc__ = f"The astro-{name.replace('_', '-')} command: scripts/{name}.py."
    return command


# one module-level function per tool script, the names pyproject.toml's entry points use
for _name in TOOL_SCRIPTS:
    globals()[_name] = _command(_name)
