#!/usr/bin/env python
"""Benchmark: the hot/cold join (size correction + join) on 20,000 x 40,000 objects.

Ours (KD-trees, vectorised ellipse tests) against a straightforward implementation of the
same rules that compares each object with every object of the other catalog (a Python
loop over one catalog, numpy over the other: CluSex's structure). Both must give
identical catalogs; the figures are from one run.

Run: python bench/bench_catalog_join.py [--hot 20000] [--cold 40000]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import catalog_join  # noqa: E402
from astro_catalogs import Catalog  # noqa: E402
from astro_ellipses import inside_ellipses, kron_ellipses  # noqa: E402


def synthetic_catalog(count, size, seed, kron_range, a_range):
    rng = np.random.default_rng(seed)
    return Catalog([
        ("NUMBER", np.arange(1, count + 1)),
        ("XPEAK_IMAGE", rng.integers(1, size + 1, count).astype(float)),
        ("YPEAK_IMAGE", rng.integers(1, size + 1, count).astype(float)),
        ("KRON_RADIUS", rng.uniform(*kron_range, count)),
        ("A_IMAGE", rng.uniform(*a_range, count)),
        ("ELLIPTICITY", rng.uniform(0, 0.8, count)),
        ("THETA_IMAGE", rng.uniform(-90, 90, count)),
        ("FLUX_RADIUS", rng.uniform(1, 5, count)),
        ("ISOAREA_IMAGE", rng.integers(5, 500, count)),
    ])


def all_pairs_correct_sizes(primary, secondary, frac_tol, redu_coef, scale_cor, min_radius,
                            match_radius):
    """The size correction, testing every pair (one object at a time)."""
    out = Catalog((name, np.array(values, copy=True)) for name, values in primary.items())
    sx, sy = secondary["XPEAK_IMAGE"], secondary["YPEAK_IMAGE"]
    size_s_all = secondary["KRON_RADIUS"] * secondary["A_IMAGE"]
    for i in range(primary.nrows):
        d = np.hypot(sx - primary["XPEAK_IMAGE"][i], sy - primary["YPEAK_IMAGE"][i])
        j = int(np.argmin(d)) if len(d) else -1
        if j >= 0 and d[j] <= match_radius:
            size_p = primary["KRON_RADIUS"][i] * primary["A_IMAGE"][i]
            size_s = max(size_s_all[j], catalog_join.MIN_SIZE)
            if (size_p - size_s) / size_s > frac_tol:
                for name in catalog_join.SHAPE_COLUMNS:
                    if name in out and name in secondary:
                        out[name][i] = secondary[name][j]
                if size_p / (scale_cor * size_s) - 1.0 > frac_tol:
                    out["KRON_RADIUS"][i] = scale_cor * secondary["KRON_RADIUS"][j]
        else:
            out["KRON_RADIUS"][i] *= redu_coef
            if out["KRON_RADIUS"][i] * out["A_IMAGE"][i] < min_radius and out["A_IMAGE"][i] > 0:
                out["KRON_RADIUS"][i] = min_radius / out["A_IMAGE"][i]
    return out


def all_pairs_join(first, second, settings, correction):
    c = correction
    params = (c.frac_tol, c.redu_coef, c.scale_cor, c.min_radius, c.match_radius)
    first_c = all_pairs_correct_sizes(first, second, *params)
    second_c = all_pairs_correct_sizes(second, first, *params)
    e = kron_ellipses(first_c, settings.join_scale)
    reject = np.zeros(second_c.nrows, dtype=bool)
    for k in range(second_c.nrows):
        reject[k] = inside_ellipses(second_c["XPEAK_IMAGE"][k], second_c["YPEAK_IMAGE"][k],
                                    e.x, e.y, e.major, e.minor, e.theta).any()
    return catalog_join.merge(first_c, second_c, ~reject)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hot", type=int, default=20000)
    parser.add_argument("--cold", type=int, default=40000)
    parser.add_argument("--size", type=int, default=8192, help="image side (pixels)")
    options = parser.parse_args()
    hot = synthetic_catalog(options.hot, options.size, 1, (2.5, 6.0), (1.0, 8.0))
    cold = synthetic_catalog(options.cold, options.size, 2, (2.5, 4.0), (0.5, 3.0))
    settings = catalog_join.JoinSettings(mode="hotcold", join_scale=1.5)
    correction = catalog_join.SizeCorrection(0.5, 0.2, 1.5, 1.5 / 0.262, 3.0)
    start = time.perf_counter()
    ours, counts = catalog_join.join_catalogs(hot, cold, settings, correction)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = all_pairs_join(hot, cold, settings, correction)
    slow_s = time.perf_counter() - start
    identical = list(ours) == list(slow) and all(
        np.array_equal(ours[name], slow[name], equal_nan=True) for name in ours)
    print(f"hot/cold join of {options.hot} x {options.cold} objects on a "
          f"{options.size}x{options.size} image: {counts['joined']} joined, "
          f"{counts['rejected from catalog 2']} rejected, "
          f"{counts['resized from the other catalog']} resized")
    print(f"ours (KD-tree): {ours_s:.3f} s; all pairs: {slow_s:.1f} s; "
          f"{slow_s / ours_s:.0f}x faster; identical results: {identical}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
