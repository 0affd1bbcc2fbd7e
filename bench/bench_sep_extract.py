#!/usr/bin/env python
"""Benchmark: sep_extract on a synthetic 4096x4096 field with about 20,000 sources.

One run, side by side:
- our script (catalog + background, RMS and segmentation FITS) against bare sep calls
  making the same measurements on the same array (Background with its RMS map, extract
  with its segmentation map, kron_radius, sum_ellipse, flux_radius; no files written):
  wall time and peak memory (each in a fresh process);
- the overlay: one EllipseCollection (ours) against one matplotlib Ellipse patch per object.
With --weighted, both sides also take an inverse-variance map (vignetted, with dead columns
and zero-weight blobs: 0.3 % bad pixels): ours rescales it, fills the bad pixels (INTERP_TYPE
ALL), filters the variance for the threshold and adds FLAGS_WEIGHT; bare sep masks the bad
pixels and thresholds and measures with the per-pixel error.

Each side runs --repeat times, interleaved, each run in a fresh process; the fastest run of
each side is compared (a loaded machine slows single runs by up to 30 % here).

Run: python bench/bench_sep_extract.py [--size 4096] [--sources 20000] [--weighted]
     [--mask-type none|correct|blank] [--repeat 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from child_peak import PEAK_RSS

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(HERE, "..", "scripts")
sys.path.insert(0, SCRIPTS)


def synthetic_field(size, count, seed=1):
    """Sky 1000 + noise (sigma 10) + `count` Gaussian sources, added stamp by stamp in one
    vectorised scatter-add."""
    rng = np.random.default_rng(seed)
    image = 1000.0 + rng.normal(0.0, 10.0, (size, size)).astype(np.float32)
    half = 7
    offsets = np.arange(-half, half + 1)
    x0 = rng.uniform(half, size - half - 1, count)
    y0 = rng.uniform(half, size - half - 1, count)
    sigma = rng.uniform(0.8, 2.5, count)
    flux = 10 ** rng.uniform(2.5, 5.0, count)
    xi, yi = np.rint(x0).astype(int), np.rint(y0).astype(int)
    dx = offsets[None, None, :] + xi[:, None, None] - x0[:, None, None]
    dy = offsets[None, :, None] + yi[:, None, None] - y0[:, None, None]
    stamps = np.exp(-(dx ** 2 + dy ** 2) / (2 * sigma[:, None, None] ** 2))
    stamps *= (flux / (2 * np.pi * sigma ** 2))[:, None, None]
    rows = (yi[:, None, None] + offsets[None, :, None]) * size
    cols = xi[:, None, None] + offsets[None, None, :]
    np.add.at(image.ravel(), (rows + cols).ravel(), stamps.ravel().astype(np.float32))
    return image


def weight_map(size, seed=2):
    """An inverse variance for the synthetic field (sigma 10 in the centre, 15 % more noise
    at the corners), zero in 4 dead columns and 200 blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:size, :size]
    r2 = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) / (size / 2) ** 2
    weight = (1.0 / (100.0 * (1 + 0.15 * r2))).astype(np.float32)
    weight[:, rng.integers(0, size, 4)] = 0.0
    for x, y in rng.integers(10, size - 10, (200, 2)):
        weight[y - 5:y + 5, x - 5:x + 5] = 0.0
    return weight


def bare_sep_weighted(path):
    """The same measurements with sep alone and a weight map: bad pixels masked, the
    per-pixel error from the inverse variance."""
    import sep
    from astropy.io import fits
    sep.set_extract_pixstack(5_000_000)
    sep.set_sub_object_limit(4096)
    data = fits.getdata(path).astype(np.float32)
    weight = fits.getdata(path.replace(".fits", "_weight.fits")).astype(np.float32)
    bad = weight <= 0
    err = np.where(bad, 0, 1 / np.sqrt(np.where(bad, 1, weight))).astype(np.float32)
    bkg = sep.Background(data, mask=bad, bw=64, bh=64, fw=3, fh=3)
    data_sub = data - bkg.back()
    bkg.rms()
    objects, _ = sep.extract(data_sub, 1.5, err=err, mask=bad, segmentation_map=True,
                             filter_type="conv")
    x, y, a, b, theta = (objects[k] for k in ("x", "y", "a", "b", "theta"))
    kron, _ = sep.kron_radius(data_sub, x, y, a, b, theta, 6.0, mask=bad)
    kron = np.maximum(2.5 * kron, 3.5)
    flux, _, _ = sep.sum_ellipse(data_sub, x, y, a, b, theta, kron, err=err, mask=bad,
                                 subpix=1)
    sep.flux_radius(data_sub, x, y, 6.0 * a, 0.5, normflux=flux, mask=bad, subpix=5)
    return len(objects)


# the weighted steps that bare sep does not take, timed inside our run
WEIGHTED_STEPS = (("astro_weights", "weight_scale", "SExtractor's weight rescaling"),
                  ("sep_extract", "detection_noise", "the filtered variance of the threshold"))
STEP_TIMES = {}


def timed(module_name, name):
    """Replace module.name by a wrapper adding its wall time to STEP_TIMES[name]."""
    import importlib
    module = importlib.import_module(module_name)
    function = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            STEP_TIMES[name] = STEP_TIMES.get(name, 0.0) + time.perf_counter() - start
    setattr(module, name, wrapper)


def ours_weighted(path, out):
    import sep_extract
    for module_name, name, _ in WEIGHTED_STEPS:
        timed(module_name, name)
    sep_extract.main(["--image", path, "--catalog", os.path.join(out, "cat.tabular"),
                      "--background", os.path.join(out, "back.fits"),
                      "--rms", os.path.join(out, "rms.fits"),
                      "--segmentation", os.path.join(out, "seg.fits"),
                      "--weight", path.replace(".fits", "_weight.fits"),
                      "--mask-type", mask_type()])


def bare_sep(path):
    """The same measurements with sep alone (what our script adds is I/O and bookkeeping)."""
    import sep
    from astropy.io import fits
    sep.set_extract_pixstack(5_000_000)
    sep.set_sub_object_limit(4096)
    data = fits.getdata(path).astype(np.float32)
    bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    data_sub = data - bkg.back()
    bkg.rms()  # the RMS map and the segmentation map are measurements our script outputs
    objects, _ = sep.extract(data_sub, 1.5, err=bkg.globalrms, segmentation_map=True)
    x, y, a, b, theta = (objects[k] for k in ("x", "y", "a", "b", "theta"))
    kron, _ = sep.kron_radius(data_sub, x, y, a, b, theta, 6.0)
    kron = np.maximum(2.5 * kron, 3.5)
    flux, _, _ = sep.sum_ellipse(data_sub, x, y, a, b, theta, kron, err=bkg.globalrms, subpix=1)
    sep.flux_radius(data_sub, x, y, 6.0 * a, 0.5, normflux=flux, subpix=5)
    return len(objects)


def ours(path, out):
    import sep_extract
    sep_extract.main(["--image", path, "--catalog", os.path.join(out, "cat.tabular"),
                      "--background", os.path.join(out, "back.fits"),
                      "--rms", os.path.join(out, "rms.fits"),
                      "--segmentation", os.path.join(out, "seg.fits"),
                      "--mask-type", mask_type()])


def mask_type():
    """none by default: the neighbours summed as bare sep sums them (the same
    measurements); correct: SExtractor's default, which bare sep cannot do."""
    return os.environ.get("BENCH_MASK_TYPE", "none")


def measure_in_child(kind, path, out):
    """Run one variant in a fresh Python; return (wall seconds, peak RSS in bytes)."""
    code = (f"import sys, time, resource; sys.path.insert(0, {HERE!r}); "
            "import bench_sep_extract as b; t = time.perf_counter(); "
            f"b.{kind}({path!r}{', ' + repr(out) if kind.startswith('ours') else ''}); "
            "print(time.perf_counter() - t, "
            f"{PEAK_RSS}, "
            "' '.join(f'{k}={v}' for k, v in b.STEP_TIMES.items()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    seconds, peak, *steps = result.stdout.strip().splitlines()[-1].split()
    return float(seconds), int(peak), {k: float(v) for k, v in (p.split("=") for p in steps)}


def interleaved_runs(suffix, path, out, repeat):
    """Ours and bare sep, one after the other, `repeat` times: the fastest wall time of
    each (the run least disturbed by the rest of the machine) and the largest peak RSS."""
    ours, bare = [], []
    for _ in range(repeat):
        ours.append(measure_in_child("ours" + suffix, path, out))
        bare.append(measure_in_child("bare_sep" + suffix, path, out))
    fastest = min(ours, key=lambda run: run[0])
    return (fastest[0], max(r for _, r, _ in ours), min(s for s, _, _ in bare),
            max(r for _, r, _ in bare), fastest[2])


def baseline_rss():
    """Peak RSS of a Python that only imports what the script imports (no data)."""
    code = ("import resource, numpy, sep, scipy.ndimage, astropy.io.fits, astropy.wcs; "
            f"print({PEAK_RSS})")
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout)


def overlay_times(image, catalog_path, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    from astro_catalogs import read_catalog
    from astro_ellipses import shape_ellipses
    from astro_pictures import catalog_layer, render_overlay
    catalog = read_catalog(catalog_path)
    layer = catalog_layer(catalog, shape_ellipses(catalog), "objects")
    render_overlay(image, [], os.path.join(out, "warm_up.png"))  # imports, fonts, memory
    start = time.perf_counter()
    render_overlay(image, [layer], os.path.join(out, "collection.png"))
    collection = time.perf_counter() - start
    start = time.perf_counter()
    render_overlay(image, [], os.path.join(out, "image_only.png"))
    image_only = time.perf_counter() - start

    start = time.perf_counter()
    fig = plt.figure(figsize=(8, 8), dpi=100)
    ax = fig.add_axes([0.1, 0.08, 0.85, 0.84])
    from astro_pictures import image_norm
    ax.imshow(image, origin="lower", cmap="gray", norm=image_norm(image))
    for x, y, w, h, angle in zip(layer["x"], layer["y"], layer["width"], layer["height"],
                                 layer["angle"]):
        ax.add_patch(Ellipse((x, y), w, h, angle=angle, fill=False, edgecolor="red",
                             linewidth=0.8))
    fig.savefig(os.path.join(out, "patches.png"))
    plt.close(fig)
    patches = time.perf_counter() - start
    return image_only, collection, patches, len(layer["x"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--sources", type=int, default=20000)
    parser.add_argument("--weighted", action="store_true",
                        help="with an inverse-variance map (see the notes)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each side, interleaved; the fastest counts (default 3)")
    parser.add_argument("--mask-type", default="none", choices=("none", "correct", "blank"),
                        help="sep_extract's --mask-type (default none: what bare sep does)")
    args = parser.parse_args()
    os.environ["BENCH_MASK_TYPE"] = args.mask_type
    suffix = "_weighted" if args.weighted else ""
    from astropy.io import fits
    with tempfile.TemporaryDirectory() as out:
        image = synthetic_field(args.size, args.sources)
        path = os.path.join(out, "field.fits")
        fits.PrimaryHDU(image).writeto(path)
        if args.weighted:
            fits.PrimaryHDU(weight_map(args.size)).writeto(path.replace(".fits",
                                                                        "_weight.fits"))
        image_bytes = image.nbytes
        base = baseline_rss()
        runs = interleaved_runs(suffix, path, out, args.repeat)
        ours_s, ours_rss, sep_s, sep_rss, steps = runs
        with open(os.path.join(out, "cat.tabular")) as handle:
            detected = sum(1 for _ in handle) - 1
        image_s, collection_s, patches_s, drawn = overlay_times(
            image, os.path.join(out, "cat.tabular"), out)
    mb = 1024 ** 2
    print(f"field: {args.size}x{args.size} float32 ({image_bytes / mb:.0f} MB), "
          f"{args.sources} sources injected, {detected} detected"
          + (", with an inverse-variance map" if args.weighted else "")
          + f"; sep_extract --mask-type {args.mask_type}; best of {args.repeat} runs each")
    print(f"{'':34}{'ours':>10}{'bare sep':>10}{'ratio':>8}")
    print(f"{'wall time (s)':34}{ours_s:10.2f}{sep_s:10.2f}{ours_s / sep_s:8.2f}")
    if steps:
        own = sum(steps.values())
        print("weighted steps bare sep does not take, inside our fastest run: "
              + ", ".join(f"{label} {steps.get(name, 0.0):.2f} s"
                          for _, name, label in WEIGHTED_STEPS)
              + f"; without them: {ours_s - own:.2f} s, {(ours_s - own) / sep_s:.2f}x")
    print(f"{'peak RSS (MB)':34}{ours_rss / mb:10.0f}{sep_rss / mb:10.0f}"
          f"{ours_rss / sep_rss:8.2f}")
    print(f"{'peak RSS above imports (x image)':34}{(ours_rss - base) / image_bytes:10.2f}"
          f"{(sep_rss - base) / image_bytes:10.2f}")
    print(f"overlay of {drawn} ellipses on the {args.size}x{args.size} image (PNG, 800 px): "
          f"EllipseCollection {collection_s:.2f} s in all, one Ellipse patch each "
          f"{patches_s:.2f} s: {patches_s / collection_s:.1f}x faster; the image alone takes "
          f"{image_s:.2f} s, so drawing the ellipses takes {collection_s - image_s:.2f} s "
          f"against {patches_s - image_s:.2f} s: "
          f"{(patches_s - image_s) / max(collection_s - image_s, 1e-3):.0f}x faster")


if __name__ == "__main__":
    main()
