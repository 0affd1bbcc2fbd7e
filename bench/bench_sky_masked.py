"""The gradient sky on a frame that is almost all masked, against sep_extract on the same
image: the rings are bounded (MaxScale x KRON_RADIUS x A, at most 256 rings), so an object
whose sky never turns costs a bounded amount.

Run: python bench/bench_sky_masked.py [--size 4000] [--objects 2000]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(HERE), "scripts")
sys.path.insert(0, HERE)
sys.path.insert(0, SCRIPTS)
from bench_sep_extract import synthetic_field  # noqa: E402


def timed(argv):
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--objects", type=int, default=2000)
    options = parser.parse_args()
    from astropy.io import fits

    from astro_catalogs import read_catalog, write_catalog
    with tempfile.TemporaryDirectory() as out:
        image = os.path.join(out, "image.fits")
        fits.PrimaryHDU(synthetic_field(options.size, options.objects)).writeto(image)
        catalog = os.path.join(out, "cat.tabular")
        extract_s = timed([os.path.join(SCRIPTS, "sep_extract.py"), "--image", image,
                           "--catalog", catalog])
        rows = read_catalog(catalog)
        rows = rows.take(np.arange(min(options.objects, rows.nrows)))
        write_catalog(catalog, rows)
        rng = np.random.default_rng(2)
        mask = np.ones((options.size, options.size), dtype=np.uint8)  # 99.98 % masked
        free = rng.choice(mask.size, size=int(mask.size * 2e-4), replace=False)
        mask.ravel()[free] = 0
        mask_path = os.path.join(out, "mask.fits")
        fits.PrimaryHDU(mask).writeto(mask_path)
        sky_s = timed([os.path.join(SCRIPTS, "sky_compute.py"), "--image", image, "--catalog",
                       catalog, "--mask", mask_path, "--output", os.path.join(out, "s.tab")])
        flags = read_catalog(os.path.join(out, "s.tab"))["SKY_FLAG"]
    print(f"gradient sky of {rows.nrows} objects on a {options.size}^2 frame, 99.98 % masked: "
          f"{sky_s:.1f} s; sep_extract on the same image: {extract_s:.1f} s; ratio "
          f"{sky_s / extract_s:.2f}x; SKY_FLAG 0/1/2: {int((flags == 0).sum())}/"
          f"{int((flags == 1).sum())}/{int((flags == 2).sum())}")


if __name__ == "__main__":
    main()
