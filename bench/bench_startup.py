"""Start-up cost of each script on a small image: what a Galaxy user pays per job when a
tool is mapped over a collection of 500 stamps.

Run: python bench/bench_startup.py [--repeat 5]

Wall time (median of --repeat runs) of every script on sep's 256x256 test image, against
`python -c pass` (the interpreter alone) and bare sep doing the same job (read the FITS
file with astropy, background, extract), all in one run on this machine.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(REPO, "test-data")
SCRIPTS = os.path.join(REPO, "scripts")
IMAGE = os.path.join(DATA, "sep_image.fits")
BARE_SEP = (
    "import numpy as np, sep; from astropy.io import fits; "
    f"d = fits.getdata({IMAGE!r}).astype(np.float32); b = sep.Background(d); "
    "o = sep.extract(d - b, 1.5, err=b.globalrms)")


def commands(out):
    catalog = os.path.join(DATA, "sep_hotcold.tabular")
    mask = os.path.join(DATA, "sep_hotcold_mask.fits")
    return {
        "sep_extract (catalog only)": ["sep_extract.py", "--image", IMAGE, "--catalog",
                                       f"{out}/c.tab"],
        "sep_extract (every output)": ["sep_extract.py", "--image", IMAGE, "--catalog",
                                       f"{out}/c.tab", "--segmentation", f"{out}/s.fits",
                                       "--background", f"{out}/b.fits", "--rms",
                                       f"{out}/r.fits", "--overlay", f"{out}/o.png"],
        "catalog_join": ["catalog_join.py", "--catalog1", os.path.join(DATA, "sep_hot.tabular"),
                         "--catalog2", os.path.join(DATA, "sep_cold.tabular"), "--output",
                         f"{out}/j.tab"],
        "catalog_to_regions": ["catalog_to_regions.py", "--catalog", catalog, "--output",
                               f"{out}/r.reg"],
        "mask_build": ["mask_build.py", "--catalog", catalog, "--image", IMAGE, "--output",
                       f"{out}/m.fits"],
        "sky_compute": ["sky_compute.py", "--catalog", catalog, "--image", IMAGE, "--mask",
                        mask, "--output", f"{out}/sky.tab"],
        "ellipse_overlay": ["ellipse_overlay.py", "--image", IMAGE, "--catalog", catalog,
                            "--output", f"{out}/e.png"],
        "forced_photometry": ["forced_photometry.py", "--catalog",
                              os.path.join(DATA, "sextractor_dual_detection.cat"), "--image",
                              os.path.join(DATA, "sep_measure.fits"), "--output",
                              f"{out}/f.tab"],
    }


def wall_time(argv, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    python = sys.executable
    bare_python = wall_time([python, "-c", "pass"], options.repeat)
    bare_sep = wall_time([python, "-c", BARE_SEP], options.repeat)
    print(f"{'job':32}{'wall (s)':>10}{'x bare sep':>12}")
    print(f"{'python -c pass':32}{bare_python:10.3f}{bare_python / bare_sep:12.2f}")
    print(f"{'bare sep (read, back, extract)':32}{bare_sep:10.3f}{1.0:12.2f}")
    with tempfile.TemporaryDirectory() as out:
        for name, argv in commands(out).items():
            seconds = wall_time([python, os.path.join(SCRIPTS, argv[0]), *argv[1:]],
                                options.repeat)
            print(f"{name:32}{seconds:10.3f}{seconds / bare_sep:12.2f}")


if __name__ == "__main__":
    main()
