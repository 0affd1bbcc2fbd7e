#!/usr/bin/env python
"""Benchmark: peak memory and time at survey scale, each job in a fresh Python process.

- sep_extract on an 8000x8000 float32 field (256 MB) with every output the Galaxy form
  selects by default (catalog, background, RMS, segmentation map, overlay picture);
- ellipse_overlay alone on that image and catalog;
- mask_build with 1,000,000 ellipses on 4000x4000;
- catalog_join of 1,000,000 (hot) and 500,000 (cold) objects.
Peak RSS is measured above a Python that only imports what the scripts import, and given
as a multiple of the image's bytes (the issue's bounds: 6x for sep_extract with every
output, 3x for ellipse_overlay). Times are wall seconds on this machine; sep_extract's
catalog-only time on the same image is the yardstick.

Run: python bench/bench_scale.py [--size 8000] [--sources 60000] [--ellipses 1000000]
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from child_peak import PEAK_RSS

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "scripts")
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, HERE)
IMPORTS = ("import numpy, sep, scipy.ndimage, astropy.io.fits, astropy.wcs, matplotlib; "
           "matplotlib.use('Agg'); import matplotlib.pyplot")


def run_child(script, argv):
    """(wall seconds, peak RSS bytes) of one script run in a fresh Python."""
    code = (f"import sys, time, resource; sys.path.insert(0, {SCRIPTS!r}); "
            f"import {script}; t = time.perf_counter(); {script}.main({argv!r}); "
            "print(time.perf_counter() - t, "
            f"{PEAK_RSS})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed: {result.stderr[-500:]}")
    seconds, peak = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(peak)


def baseline_rss():
    code = f"import resource; {IMPORTS}; " \
           f"print({PEAK_RSS})"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout)


def ellipse_catalog(count, size, seed=5):
    """A catalog with the columns mask_build and catalog_join need."""
    from astro_catalogs import Catalog
    rng = np.random.default_rng(seed)
    return Catalog([
        ("NUMBER", np.arange(1, count + 1)),
        ("X_IMAGE", rng.uniform(1, size, count)),
        ("Y_IMAGE", rng.uniform(1, size, count)),
        ("XPEAK_IMAGE", rng.integers(1, size + 1, count)),
        ("YPEAK_IMAGE", rng.integers(1, size + 1, count)),
        ("A_IMAGE", rng.uniform(0.5, 2.0, count)),   # a deep survey's small objects
        ("B_IMAGE", rng.uniform(0.4, 0.5, count)),
        ("THETA_IMAGE", rng.uniform(-90, 90, count)),
        ("ELLIPTICITY", rng.uniform(0, 0.6, count)),
        ("KRON_RADIUS", rng.uniform(3.5, 4.5, count)),
        ("FLUX_RADIUS", rng.uniform(1, 5, count)),
        ("ISOAREA_IMAGE", rng.integers(5, 200, count)),
        ("MAG_AUTO", rng.uniform(16, 26, count)),
        ("FLAGS", np.zeros(count, dtype=np.int64)),
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--sources", type=int, default=60000)
    parser.add_argument("--ellipses", type=int, default=1_000_000)
    args = parser.parse_args()
    from astropy.io import fits

    from astro_catalogs import write_catalog
    from bench_sep_extract import synthetic_field
    from sep_extract import COLUMN_FORMATS
    mb = 1024 ** 2
    base = baseline_rss()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        image = synthetic_field(args.size, args.sources)
        image_bytes = image.nbytes
        path = os.path.join(out, "field.fits")
        fits.PrimaryHDU(image).writeto(path)
        del image
        cat = os.path.join(out, "cat.tab")
        only_s, only_rss = run_child("sep_extract", ["--image", path, "--catalog", cat])
        every = ["--image", path, "--catalog", cat, "--background",
                 os.path.join(out, "back.fits"), "--rms", os.path.join(out, "rms.fits"),
                 "--segmentation", os.path.join(out, "seg.fits"), "--overlay",
                 os.path.join(out, "overlay.png")]
        every_s, every_rss = run_child("sep_extract", every)
        with open(cat) as handle:
            detected = sum(1 for line in handle if not line.startswith("#"))
        overlay_s, overlay_rss = run_child("ellipse_overlay", [
            "--image", path, "--catalog", cat, "--output", os.path.join(out, "o.png")])
        rows += [(f"sep_extract, catalog only ({detected} objects)", only_s, only_rss,
                  image_bytes),
                 ("sep_extract, every output (Galaxy's default)", every_s, every_rss,
                  image_bytes),
                 ("ellipse_overlay alone", overlay_s, overlay_rss, image_bytes)]
        # mask_build and catalog_join at a million objects
        mask_size = 4000
        fits.PrimaryHDU(np.zeros((mask_size, mask_size), np.float32)).writeto(
            os.path.join(out, "blank.fits"))
        big = os.path.join(out, "big.tab")
        write_catalog(big, ellipse_catalog(args.ellipses, mask_size), COLUMN_FORMATS)
        mask_s, mask_rss = run_child("mask_build", [
            "--catalog", big, "--image", os.path.join(out, "blank.fits"),
            "--output", os.path.join(out, "mask.fits")])
        cold = os.path.join(out, "cold.tab")
        write_catalog(cold, ellipse_catalog(args.ellipses // 2, mask_size, seed=6),
                      COLUMN_FORMATS)
        join_s, join_rss = run_child("catalog_join", [
            "--catalog1", big, "--catalog2", cold, "--output", os.path.join(out, "j.tab")])
        rows += [(f"mask_build, {args.ellipses:,} ellipses on {mask_size}^2", mask_s,
                  mask_rss, mask_size ** 2 * 4),
                 (f"catalog_join, {args.ellipses:,} + {args.ellipses // 2:,} objects",
                  join_s, join_rss, None)]
    print(f"image {args.size}x{args.size} float32 = {image_bytes / mb:.0f} MB; the imports "
          f"alone peak at {base / mb:.0f} MB")
    print(f"{'job':52}{'time (s)':>10}{'peak MB':>10}{'above imports':>16}")
    for name, seconds, peak, reference in rows:
        ratio = f"{(peak - base) / reference:.2f}x image" if reference else \
            f"{(peak - base) / mb:.0f} MB"
        print(f"{name:52}{seconds:10.1f}{peak / mb:10.0f}{ratio:>16}")
    print(f"sep_extract with every output takes {every_s / only_s:.2f}x its catalog-only time")


if __name__ == "__main__":
    main()
