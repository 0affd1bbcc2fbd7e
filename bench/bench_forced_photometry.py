"""forced_photometry against bare sep doing the same sums, in one run.

Run: python bench/bench_forced_photometry.py [--size 4096] [--sources 20000] [--bands 4]

A synthetic field (bench_sep_extract.synthetic_field) scaled per band, its catalog from
sep_extract, then our forced photometry in every band (AUTO and three apertures) against
bare sep: for each band, read the image, background, one sum_ellipse and one sum_circle
per aperture. Both in fresh processes, wall time and peak memory.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
from bench_sep_extract import synthetic_field  # noqa: E402
from child_peak import PEAK_RSS  # noqa: E402

APERTURES = (5.0, 10.0, 20.0)


def bare_sep(catalog_path, images):
    import sep
    from astropy.io import fits

    from astro_catalogs import read_catalog
    catalog = read_catalog(catalog_path)
    x, y = catalog["X_IMAGE"] - 1, catalog["Y_IMAGE"] - 1
    a, b = catalog["A_IMAGE"], catalog["B_IMAGE"]
    theta = np.radians(catalog["THETA_IMAGE"])
    kron = catalog["KRON_RADIUS"]
    for path in images:
        data = fits.getdata(path).astype(np.float32)
        bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
        data_sub = data - bkg.back()
        sep.sum_ellipse(data_sub, x, y, a, b, theta, kron, err=bkg.globalrms, subpix=1)
        for diameter in APERTURES:
            sep.sum_circle(data_sub, x, y, diameter / 2, err=bkg.globalrms, subpix=5)


def ours(catalog_path, images, out):
    import forced_photometry
    argv = ["--catalog", catalog_path, "--apertures", ",".join(f"{d:g}" for d in APERTURES),
            "--output", os.path.join(out, "colours.tabular")]
    for index, path in enumerate(images):
        argv += ["--image", path, "--band", "griz"[index % 4] + str(index // 4 or "")]
    forced_photometry.main(argv)


def in_child(call):
    code = (f"import sys, time, resource; sys.path.insert(0, {HERE!r}); "
            "import bench_forced_photometry as b; t = time.perf_counter(); "
            f"{call}; print(time.perf_counter() - t, "
            f"{PEAK_RSS})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    seconds, peak = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--sources", type=int, default=20000)
    parser.add_argument("--bands", type=int, default=4)
    options = parser.parse_args()
    from astropy.io import fits

    import sep_extract
    with tempfile.TemporaryDirectory() as out:
        base = synthetic_field(options.size, options.sources)
        images = []
        for band in range(options.bands):
            path = os.path.join(out, f"band{band}.fits")
            fits.PrimaryHDU((base * (0.5 + 0.4 * band)).astype(np.float32)).writeto(path)
            images.append(path)
        catalog = os.path.join(out, "detection.tabular")
        sep_extract.main(["--image", images[1], "--catalog", catalog])
        start = time.perf_counter()
        bare_s, bare_rss = in_child(f"b.bare_sep({catalog!r}, {images!r})")
        ours_s, ours_rss = in_child(f"b.ours({catalog!r}, {images!r}, {out!r})")
        total = time.perf_counter() - start
    image_mb = options.size ** 2 * 4 / 1e6
    print(f"forced photometry of the {options.sources}-source field ({options.size}^2, "
          f"{options.bands} bands, AUTO + {len(APERTURES)} apertures), in {total:.0f} s:")
    print(f"  ours: {ours_s:.2f} s, peak RSS {ours_rss / 1e6:.0f} MB; bare sep: {bare_s:.2f} s, "
          f"{bare_rss / 1e6:.0f} MB; ratio {ours_s / bare_s:.2f}x (image {image_mb:.0f} MB)")


if __name__ == "__main__":
    main()
