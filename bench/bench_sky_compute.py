#!/usr/bin/env python
"""Benchmark: local sky (gradient rings) of 5,000 objects on a 4096x4096 image.

Ours (each object's rings binned at once with np.bincount in a window that grows only
when needed) against a straightforward loop over objects and rings that measures one ring
at a time (CluSex's structure), applying the same rule. One run; the results must agree.

Run: python bench/bench_sky_compute.py [--size 4096] [--objects 5000]
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
sys.path.insert(0, HERE)
import mask_build  # noqa: E402
import sky_compute  # noqa: E402
from astro_catalogs import Catalog  # noqa: E402
from astro_ellipses import kron_ellipses  # noqa: E402
from bench_sep_extract import synthetic_field  # noqa: E402


def one_ring(data, sky, labels, number, x0, y0, inner, ratio, phi, width, k):
    """Sum, sum of squares and count of the free pixels of ring k alone."""
    ny, nx = data.shape
    outer = inner + (k + 1) * width
    x_lo, x_hi = max(int(np.floor(x0 - outer)), 0), min(int(np.ceil(x0 + outer)) + 1, nx)
    y_lo, y_hi = max(int(np.floor(y0 - outer)), 0), min(int(np.ceil(y0 + outer)) + 1, ny)
    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi]
    radius = sky_compute.elliptical_radius(xs, ys, x0, y0, ratio, phi)
    ring = np.floor((radius - inner) / width).astype(np.int64)
    free = sky_compute.window_free(sky, labels, number, slice(y_lo, y_hi), slice(x_lo, x_hi))
    use = free & (ring == k)
    values = data[y_lo:y_hi, x_lo:x_hi][use].astype(np.float64)
    return values.sum(), (values ** 2).sum(), use.sum()


def loop_sky(data, sky, labels, catalog, settings):
    """Object by object, ring by ring, checking the rule after each ring."""
    x0, y0, inner, ratio, phi = sky_compute.object_geometry(catalog, settings)
    most = sky_compute.ring_counts(data.shape, catalog, settings)
    width = settings.ring_width
    result = np.full((catalog.nrows, 5), np.nan)
    for i in range(catalog.nrows):
        number = int(catalog["NUMBER"][i])
        sums, squares, counts = [], [], []
        k = 0
        while True:
            s, q, n = one_ring(data, sky, labels, number, x0[i], y0[i], inner[i], ratio[i],
                               phi[i], width, k)
            sums.append(s)
            squares.append(q)
            counts.append(n)
            k += 1
            ring, turned = sky_compute.choose_ring(np.array(sums), np.array(squares),
                                                   np.array(counts))
            if turned or k >= most[i]:
                break
        result[i] = sky_compute.ring_result(sums, squares, counts, ring, turned, inner[i],
                                            width)
    return result


def edge_sky(data, sky, labels, catalog, settings):
    """CluSex's structure: every ring out to the image edge, over the whole box of the
    edge ellipse, then the same rule (the same answers where the sky turns within the
    bound: the first turn is the same)."""
    x0, y0, inner, ratio, phi = sky_compute.object_geometry(catalog, settings)
    width = settings.ring_width
    result = np.full((catalog.nrows, 5), np.nan)
    for i in range(catalog.nrows):
        limit = sky_compute.edge_radius(data.shape, x0[i], y0[i], ratio[i], phi[i])
        nrings = max(1, int(np.ceil((limit - inner[i]) / width)))
        sums, squares, counts = sky_compute.ring_statistics(
            data, sky, labels, int(catalog["NUMBER"][i]), x0[i], y0[i], inner[i], ratio[i],
            phi[i], width, nrings)
        ring, turned = sky_compute.choose_ring(sums, squares, counts)
        result[i] = sky_compute.ring_result(sums, squares, counts, ring, turned, inner[i],
                                            width)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--objects", type=int, default=5000)
    options = parser.parse_args()
    data = synthetic_field(options.size, options.objects).astype(np.float64)
    rng = np.random.default_rng(4)
    count = options.objects
    catalog = Catalog([
        ("NUMBER", np.arange(1, count + 1)),
        ("XPEAK_IMAGE", rng.integers(20, options.size - 20, count).astype(float)),
        ("YPEAK_IMAGE", rng.integers(20, options.size - 20, count).astype(float)),
        ("KRON_RADIUS", rng.uniform(2.5, 4.0, count)),
        ("A_IMAGE", rng.uniform(1.0, 3.0, count)),
        ("ELLIPTICITY", rng.uniform(0.0, 0.6, count)),
        ("THETA_IMAGE", rng.uniform(-90, 90, count)),
    ])
    labels = mask_build.paint_ellipses(data.shape, catalog["NUMBER"],
                                       kron_ellipses(catalog, 1.5, 0.0))
    sky = labels == 0
    args = sky_compute.SkySettings(scale=1.5, offset=0.0, ring_width=20.0)
    start = time.perf_counter()
    ours = sky_compute.gradient_sky(data, sky, labels, catalog, args)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = loop_sky(data, sky, labels, catalog, args)
    slow_s = time.perf_counter() - start
    subset = 20
    start = time.perf_counter()
    edge = edge_sky(data, sky, labels, catalog.take(np.arange(subset)), args)
    edge_s = (time.perf_counter() - start) * count / subset
    same = np.allclose(ours, slow, rtol=1e-10, atol=1e-9, equal_nan=True) and \
        np.allclose(ours[:subset], edge, rtol=1e-10, atol=1e-9, equal_nan=True)
    print(f"local sky (gradient rings, width 20) of {count} objects on a "
          f"{options.size}x{options.size} image")
    print(f"ours: {ours_s:.2f} s; object-by-object, ring-by-ring loop: {slow_s:.2f} s; "
          f"{slow_s / ours_s:.1f}x faster; same results (to 1e-10): {same}")
    print(f"CluSex's structure (all rings out to the image edge, then the rule), timed on "
          f"{subset} objects and scaled to {count}: {edge_s:.0f} s; ours is "
          f"{edge_s / ours_s:.0f}x faster")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
