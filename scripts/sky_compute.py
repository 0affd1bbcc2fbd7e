#!/usr/bin/env python
"""Local sky of each catalog object (CluSex's compsky), from unmasked pixels only.

gradient: elliptical rings outward from the object's ellipse (R = Scale x KRON_RADIUS x A
+ Offset); the sky is the mean of the first ring whose next ring is not fainter (where
the object's light has faded into the sky). The rings stop at MaxScale x KRON_RADIUS x A.
boxes: NUMBOX random boxes of BOX x BOX pixels around the object, outside its ellipse's
box and within MaxScale x KRON_RADIUS x A; the sky is the median of the box means.

Output: the input catalog with BACKGROUND replaced, plus SKY_STD, SKY_NPIX, SKY_RADIUS and
SKY_FLAG (0 good; 1 gradient never turned within MaxScale / fewer boxes than asked; 2 no
sky pixels; 3 the object's peak is outside the image).
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import read_catalog, write_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    existing_file, finite_float, log, new_parser, non_negative_int, Outputs, positive_float,
    positive_int, run_cli, ToolError,
)
from astro_ellipses import elliptical_radius, kron_ellipses, kron_size  # noqa: E402
from astro_images import (  # noqa: E402
    add_image_arguments, plane_hdu_argument, read_image, read_image_argument,
    require_same_shape,
)
from astro_weights import bad_weight_mask, flagged_pixels, read_flag_map  # noqa: E402,I100

SKY_COLUMNS = ("XPEAK_IMAGE", "YPEAK_IMAGE", "KRON_RADIUS", "A_IMAGE", "THETA_IMAGE")
FIRST_RINGS = 2          # rings measured at first; the window doubles until the sky is found
MAX_RINGS = 256          # and never holds more rings than this
MIN_RING_PIXELS = 5      # a ring with fewer free pixels is skipped
MIN_FREE_FRACTION = 0.5  # a random box needs this fraction of unmasked pixels
TRIES_PER_BOX = 10
FLAG_OK, FLAG_PARTIAL, FLAG_NO_SKY, FLAG_OUTSIDE = 0, 1, 2, 3
OUTPUT_FORMATS = {"SKY_RADIUS": "%.2f", "SKY_STD": "%.6g", "BACKGROUND": "%.7g"}


@dataclass(frozen=True)
class SkySettings:
    """Where each object's sky is looked for."""

    scale: float = 1.5       # inner ellipse: R = Scale x KRON_RADIUS x A + Offset
    offset: float = 0.0
    ring_width: float = 20.0
    max_scale: float = 20.0  # rings and boxes stay within MaxScale x KRON_RADIUS x A
    nbox: int = 20
    box_size: int = 20
    seed: int = 0


def parse_args(argv=None):
    parser = new_parser(__doc__)
    add_image_arguments(parser)
    parser.add_argument("--catalog", required=True, help="catalog (any format the suite reads)")
    parser.add_argument("--mask", required=True,
                        help="mask from mask_build (object NUMBERs, or 0/1); 0 = sky")
    parser.add_argument("--output", required=True, help="catalog with the local sky")
    parser.add_argument("--method", default="gradient", choices=("gradient", "boxes"))
    parser.add_argument("--scale", type=positive_float, default=1.5,
                        help="inner ellipse R = Scale x KRON_RADIUS x A + Offset (default 1.5)")
    parser.add_argument("--offset", type=finite_float, default=0.0, help="pixels (default 0)")
    parser.add_argument("--ring-width", type=positive_float, default=20.0,
                        help="pixels (default 20)")
    parser.add_argument("--nbox", type=positive_int, default=20,
                        help="boxes per object (default 20)")
    parser.add_argument("--box-size", type=positive_int, default=20,
                        help="box side, pixels (default 20)")
    parser.add_argument("--max-scale", type=positive_float, default=20.0,
                        help="rings and boxes lie within MaxScale x KRON_RADIUS x A (default "
                             f"20; at most {MAX_RINGS} rings); an object whose rings reach it "
                             "without the sky turning gets SKY_FLAG 1")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed for the boxes")
    bad = parser.add_argument_group("pixels that are never sky")
    bad.add_argument("--weight", type=existing_file,
                     help="weight map (inverse variance): pixels of zero, negative or NaN "
                          "weight are never sky")
    bad.add_argument("--weight-hdu", type=plane_hdu_argument,
                     help="its HDU: a number, a name (INVVAR, WGT) or 'auto'")
    bad.add_argument("--flag-image", type=existing_file,
                     help="integer flag map: its flagged pixels are never sky")
    bad.add_argument("--flag-hdu", type=plane_hdu_argument,
                     help="its HDU: a number, a name (MASKBITS) or 'auto'")
    bad.add_argument("--flag-bits", type=positive_int,
                     help="only these bits count (a sum of powers of 2); default: any "
                          "non-zero value")
    return parser.parse_args(argv)


def never_sky(labels, weight_path, weight_hdu, flag_path, flag_hdu, flag_bits):
    """Mark the pixels a weight map or a flag image rules out as nobody's (-1): never sky,
    not even in an object's own rings."""
    bad = bad_weight_mask(weight_path, weight_hdu, labels.shape)
    if bad is not None:
        labels[bad] = -1
        log(f"weight map: {int(bad.sum())} pixel(s) of zero or bad weight are never sky")
    flags = read_flag_map(flag_path, flag_hdu, labels.shape)
    if flags is not None:
        flagged = flagged_pixels(flags, flag_bits)
        labels[flagged] = -1
        log(f"flag image: {int(flagged.sum())} flagged pixel(s) are never sky")
    return labels


def object_geometry(catalog, settings):
    """0-based centres, inner semi-major axis R, b/a, angle (deg): the Kron ellipse."""
    inner = kron_ellipses(catalog, settings.scale, settings.offset)
    return inner.x - 1.0, inner.y - 1.0, inner.major, inner.ratio, inner.theta


def edge_radius(shape, x0, y0, ratio, theta):
    """Elliptical radius of the farthest image corner: rings stop there."""
    ny, nx = shape
    corners_x = np.array([-0.5, nx - 0.5, -0.5, nx - 0.5])
    corners_y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    return elliptical_radius(corners_x, corners_y, x0, y0, ratio, theta).max()


def window_free(sky, labels, number, rows, cols):
    """Sky pixels of a window, the object's own mask pixels included (its own rings may
    cross its own mask ellipse)."""
    free = sky[rows, cols]
    return free | (labels[rows, cols] == number) if number > 0 else free


def ring_statistics(data, sky, labels, number, x0, y0, inner, ratio, theta, width, nrings):
    """Sum, sum of squares and count of free pixels in rings 0..nrings-1 (one window)."""
    ny, nx = data.shape
    outer = inner + nrings * width
    # the ellipse of semi-major axis `outer` fits in a box of half-side `outer`
    x_lo, x_hi = max(int(np.floor(x0 - outer)), 0), min(int(np.ceil(x0 + outer)) + 1, nx)
    y_lo, y_hi = max(int(np.floor(y0 - outer)), 0), min(int(np.ceil(y0 + outer)) + 1, ny)
    ys, xs = np.mgrid[y_lo:y_hi, x_lo:x_hi]
    radius = elliptical_radius(xs, ys, x0, y0, ratio, theta)
    ring = np.floor((radius - inner) / width).astype(np.int64)
    free = window_free(sky, labels, number, slice(y_lo, y_hi), slice(x_lo, x_hi))
    use = free & (ring >= 0) & (ring < nrings)
    values = data[y_lo:y_hi, x_lo:x_hi][use].astype(np.float64)
    index = ring[use]
    return (np.bincount(index, values, nrings), np.bincount(index, values ** 2, nrings),
            np.bincount(index, minlength=nrings))


def choose_ring(sums, squares, counts):
    """(ring, turned): the first ring whose next measured ring is not fainter."""
    measured = np.flatnonzero(counts >= MIN_RING_PIXELS)
    if len(measured) == 0:
        return None, False
    means = sums[measured] / counts[measured]
    turned = np.flatnonzero(np.diff(means) >= 0)
    if len(turned):
        return measured[turned[0]], True
    return measured[-1], False


def ring_counts(shape, catalog, settings):
    """How many rings each object may use: out to MaxScale x KRON_RADIUS x A (at least
    FIRST_RINGS rings), never past the image's farthest corner nor MAX_RINGS."""
    x0, y0, inner, ratio, theta = object_geometry(catalog, settings)
    width = settings.ring_width
    bound = np.maximum(settings.max_scale * kron_size(catalog), inner + FIRST_RINGS * width)
    edge = np.array([edge_radius(shape, x0[i], y0[i], ratio[i], theta[i])
                     for i in range(catalog.nrows)])
    limit = np.minimum(np.minimum(edge, bound), inner + MAX_RINGS * width)
    return np.maximum(1, np.ceil((limit - inner) / width)).astype(np.int64)


def object_numbers(catalog):
    if "NUMBER" not in catalog:
        return np.arange(1, catalog.nrows + 1)
    return catalog.floats("NUMBER").astype(np.int64)


def gradient_sky(data, sky, labels, catalog, settings):
    """Sky per object from rings: (mean, std, npix, radius, flag) arrays. The rings of an
    object stop at MaxScale x KRON_RADIUS x A (or the image edge, or MAX_RINGS)."""
    x0, y0, inner, ratio, theta = object_geometry(catalog, settings)
    most_rings = ring_counts(data.shape, catalog, settings)
    numbers = object_numbers(catalog)
    width = settings.ring_width
    result = np.full((catalog.nrows, 5), np.nan)
    for i in range(catalog.nrows):
        most = int(most_rings[i])
        nrings = FIRST_RINGS
        while True:
            nrings = min(nrings, most)
            sums, squares, counts = ring_statistics(
                data, sky, labels, int(numbers[i]), x0[i], y0[i], inner[i], ratio[i],
                theta[i], width, nrings)
            ring, turned = choose_ring(sums, squares, counts)
            if turned or nrings == most:
                break
            # no sky pixel at all yet (a crowded or masked field): straight to the bound
            nrings = most if counts.sum() == 0 else nrings * 2
        result[i] = ring_result(sums, squares, counts, ring, turned, inner[i], width)
    return result


def ring_result(sums, squares, counts, ring, turned, inner, width):
    """(mean, std, pixels, mid radius, flag) of the chosen ring."""
    if ring is None:
        return (np.nan, np.nan, 0, np.nan, FLAG_NO_SKY)
    n = counts[ring]
    mean = sums[ring] / n
    std = np.sqrt(max(squares[ring] / n - mean ** 2, 0.0))
    return (mean, std, n, inner + (ring + 0.5) * width, FLAG_OK if turned else FLAG_PARTIAL)


def integral_image(values):
    """Summed-area table with a leading row and column of zeros."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    np.cumsum(np.cumsum(values, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
    return table


def box_sums(table, x_lo, y_lo, size):
    return (table[y_lo + size, x_lo + size] - table[y_lo, x_lo + size]
            - table[y_lo + size, x_lo] + table[y_lo, x_lo])


def random_box_sky(data, sky_free, catalog, settings):
    """Sky per object from random boxes: every candidate box of every object is measured
    at once with summed-area tables. (median of box means, their std, npix, mean distance
    of the boxes, flag) arrays."""
    ny, nx = data.shape
    size = settings.box_size
    if size >= min(nx, ny):
        raise ToolError(f"--box-size {size} does not fit in the {nx} x {ny} image")
    ellipses = kron_ellipses(catalog, settings.scale, settings.offset)
    x0, y0, inner = ellipses.x - 1.0, ellipses.y - 1.0, ellipses.major
    outer = np.maximum(settings.max_scale * kron_size(catalog), inner + size)
    half_x, half_y = ellipses.bounds()
    tries = settings.nbox * TRIES_PER_BOX
    rng = np.random.default_rng(settings.seed)
    # lower-left corners (0-based) anywhere in the outer square, boxes inside the image
    x_lo = np.floor(x0[:, None] - outer[:, None]
                    + rng.random((catalog.nrows, tries)) * (2 * outer[:, None] - size + 1))
    y_lo = np.floor(y0[:, None] - outer[:, None]
                    + rng.random((catalog.nrows, tries)) * (2 * outer[:, None] - size + 1))
    x_lo = x_lo.astype(np.int64)
    y_lo = y_lo.astype(np.int64)
    in_image = (x_lo >= 0) & (y_lo >= 0) & (x_lo + size <= nx) & (y_lo + size <= ny)
    # a box must not overlap the box around the object's own inner ellipse
    clear = ((x_lo + size - 1 < x0[:, None] - half_x[:, None])
             | (x_lo > x0[:, None] + half_x[:, None])
             | (y_lo + size - 1 < y0[:, None] - half_y[:, None])
             | (y_lo > y0[:, None] + half_y[:, None]))
    xs, ys = np.where(in_image, x_lo, 0), np.where(in_image, y_lo, 0)
    counts = box_sums(integral_image(sky_free), xs, ys, size)
    sums = box_sums(integral_image(np.where(sky_free, data, 0.0)), xs, ys, size)
    good = in_image & clear & (counts >= MIN_FREE_FRACTION * size * size)
    good &= np.cumsum(good, axis=1) <= settings.nbox  # the first nbox good ones, in order
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(good, sums / counts, np.nan)
    used = good.sum(axis=1)
    distance = np.hypot(xs + (size - 1) / 2 - x0[:, None], ys + (size - 1) / 2 - y0[:, None])
    result = np.full((catalog.nrows, 5), np.nan)
    has = used > 0
    result[has, 0] = np.nanmedian(means[has], axis=1)
    result[has, 1] = np.nanstd(means[has], axis=1, ddof=0)
    result[:, 2] = np.where(good, counts, 0).sum(axis=1)
    result[has, 3] = np.nanmean(np.where(good, distance, np.nan)[has], axis=1)
    result[:, 4] = np.where(used == 0, FLAG_NO_SKY,
                            np.where(used < settings.nbox, FLAG_PARTIAL, FLAG_OK))
    return result


def label_mask(path, shape):
    """The mask as integer labels (0 = sky, -1 = masked but nobody's). A 0/1 mask has no
    object labels: its masked pixels belong to no object (never to NUMBER 1)."""
    image = read_image(path, what="mask")
    require_same_shape(image, shape, "mask")
    labels = np.rint(image.data).astype(np.int64)
    if image.invalid is not None:
        labels[image.invalid] = -1
    if labels.max() <= 1:
        log("the mask is 0/1 (no object labels): every masked pixel is kept out of the sky")
        labels[labels == 1] = -1
    return labels


def compute_sky(image, catalog, labels, method, settings):
    """(mean, std, npix, radius, flag) per object; objects whose peak is outside the image
    get SKY_FLAG 3 (a full-frame catalog on a cutout)."""
    catalog.require(SKY_COLUMNS)
    kron_ellipses(catalog)  # the geometry must be complete and finite before any work
    data = image.data
    sky = labels == 0
    if image.invalid is not None:
        sky &= ~image.invalid
    ny, nx = data.shape
    x, y = catalog.floats("XPEAK_IMAGE"), catalog.floats("YPEAK_IMAGE")
    inside = (x >= 0.5) & (x < nx + 0.5) & (y >= 0.5) & (y < ny + 0.5)
    result = np.full((catalog.nrows, 5), np.nan)
    result[:, 2], result[:, 4] = 0, FLAG_OUTSIDE
    if inside.any():
        chosen = catalog.take(inside)
        if method == "gradient":
            result[inside] = gradient_sky(data, sky, labels, chosen, settings)
        else:
            result[inside] = random_box_sky(data, sky, chosen, settings)
    return result


def main(argv=None):
    args = parse_args(argv)
    image = read_image_argument(args)
    catalog = read_catalog(args.catalog, "the catalog")
    labels = never_sky(label_mask(args.mask, image.shape), args.weight, args.weight_hdu,
                       args.flag_image, args.flag_hdu, args.flag_bits)
    settings = SkySettings(args.scale, args.offset, args.ring_width, args.max_scale, args.nbox,
                           args.box_size, args.seed)
    result = compute_sky(image, catalog, labels, args.method, settings)
    catalog["BACKGROUND"] = result[:, 0]
    catalog["SKY_STD"] = result[:, 1]
    catalog["SKY_NPIX"] = result[:, 2].astype(np.int64)
    catalog["SKY_RADIUS"] = result[:, 3]
    catalog["SKY_FLAG"] = result[:, 4].astype(np.int64)
    with Outputs() as out:
        write_catalog(out.path(args.output), catalog, OUTPUT_FORMATS)
    flags = catalog["SKY_FLAG"]
    log(f"{args.method}: local sky of {catalog.nrows} objects; "
        f"{int((flags == FLAG_OK).sum())} good, {int((flags == FLAG_PARTIAL).sum())} partial "
        f"(flag 1), {int((flags == FLAG_NO_SKY).sum())} without sky pixels (flag 2)"
        + (f", {int((flags == FLAG_OUTSIDE).sum())} outside the image (flag 3)"
           if (flags == FLAG_OUTSIDE).any() else ""))
    if np.isfinite(catalog["BACKGROUND"]).any():
        log(f"median sky {np.nanmedian(catalog['BACKGROUND']):.6g}, median spread "
            f"{np.nanmedian(catalog['SKY_STD']):.4g}")


if __name__ == "__main__":
    run_cli(main)
