#!/usr/bin/env python
"""Join two source catalogs: the CluSex hot/cold merge (with size correction) or adding a
third catalog's new objects.

hotcold: each catalog's sizes are corrected against the other's, then every catalog-1
object is kept and a catalog-2 object is added only when its peak lies outside every
catalog-1 ellipse (JoinScale x KRON_RADIUS x A). add: the same join without the size
correction. add-unmatched: a catalog-2 object is added when no catalog-1 object lies
within the match radius. Uses KD-trees: no loop over object pairs.
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import read_catalog, stack_catalogs, write_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    finite_float, log, new_parser, non_negative_float, Outputs, positive_float, run_cli,
)
from astro_ellipses import (  # noqa: E402
    axis_ratio, inside_ellipses, kron_ellipses, kron_size,
)
from astro_regions import catalog_region_lines, write_regions  # noqa: E402

# What the join needs of a catalog (CluSex's columns; sizes are KRON_RADIUS x A_IMAGE).
JOIN_COLUMNS = ("XPEAK_IMAGE", "YPEAK_IMAGE", "KRON_RADIUS", "A_IMAGE", "THETA_IMAGE")
# Columns that describe an object's size and shape, taken together from the other run
# when the size correction replaces a size.
SHAPE_COLUMNS = ("KRON_RADIUS", "A_IMAGE", "B_IMAGE", "ELLIPTICITY", "THETA_IMAGE",
                 "FLUX_RADIUS", "ISOAREA_IMAGE")
MIN_SIZE = 0.1        # px; CluSex's floor on the matched object's size


@dataclass(frozen=True)
class SizeCorrection:
    """CluSex's size correction of one run against the other (see correct_sizes)."""

    frac_tol: float = 0.5
    redu_coef: float = 0.2
    scale_cor: float = 1.5
    min_radius: float = 1.5 / 0.262   # px: the seeing FWHM over the pixel scale
    match_radius: float = 3.0


@dataclass(frozen=True)
class JoinSettings:
    """How catalog 2's objects are added to catalog 1."""

    mode: str = "hotcold"             # hotcold, add or add-unmatched
    join_scale: float = 1.5           # catalog-1 ellipses: JoinScale x KRON_RADIUS x A
    match_radius: float = 5.0         # add-unmatched: counterparts within this (px)
    added_kron_factor: float = 1.0    # add-unmatched: KRON_RADIUS factor of added objects
    added_min_size: float = 0.0       # add-unmatched: smallest K x A of added objects (px)


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument("--catalog1", required=True,
                        help="catalog kept whole (the 'hot' run: bright, large objects)")
    parser.add_argument("--catalog2", required=True,
                        help="catalog whose new objects are added (the 'cold' run)")
    parser.add_argument("--output", required=True, help="joined catalog (tab-separated)")
    parser.add_argument("--regions", help="ds9 region file of the joined catalog's ellipses")
    parser.add_argument("--mode", default="hotcold", choices=("hotcold", "add", "add-unmatched"))
    parser.add_argument("--join-scale", type=positive_float, default=1.5,
                        help="catalog-1 ellipses are JoinScale x KRON_RADIUS x A (default 1.5)")
    parser.add_argument("--scale", type=positive_float, default=1.5,
                        help="region ellipses: Scale x KRON_RADIUS x A + Offset (default 1.5)")
    parser.add_argument("--offset", type=finite_float, default=0.0,
                        help="region ellipse offset (px)")
    parser.add_argument("--frac-tol", type=positive_float, default=0.5,
                        help="size correction: relative size tolerance FracTol (default 0.5)")
    parser.add_argument("--redu-coef", type=positive_float, default=0.2,
                        help="size correction: KRON_RADIUS factor for objects without a "
                             "counterpart, ReduCoef (default 0.2)")
    parser.add_argument("--scale-cor", type=positive_float, default=1.5,
                        help="size correction: factor on the counterpart's size, ScaleCor "
                             "(default 1.5)")
    parser.add_argument("--seeing-fwhm", type=non_negative_float, default=1.5,
                        help="seeing FWHM in arcsec: smallest size after a reduction "
                             "(default 1.5)")
    parser.add_argument("--pixel-scale", type=positive_float, default=0.262,
                        help="arcsec per pixel, to turn the seeing into pixels (default 0.262)")
    parser.add_argument("--size-match-radius", type=positive_float, default=3.0,
                        help="size correction: counterparts are within this many px (default 3)")
    parser.add_argument("--match-radius", type=positive_float, default=5.0,
                        help="add-unmatched: counterparts are within this many px (default 5)")
    parser.add_argument("--added-kron-factor", type=positive_float, default=1.0,
                        help="add-unmatched: KRON_RADIUS factor of added objects (CluSex "
                             "joincat -r; default 1 = unchanged)")
    parser.add_argument("--added-min-size", type=non_negative_float, default=0.0,
                        help="add-unmatched: smallest KRON_RADIUS x A of added objects, px "
                             "(CluSex joincat -m; default 0)")
    return parser.parse_args(argv)


def load_catalog(path, what):
    """Read a catalog and check it has what the join needs; float sizes, int numbers."""
    catalog = read_catalog(path, what)
    catalog.require(JOIN_COLUMNS, what)
    ratio = axis_ratio(catalog, what)
    for name in JOIN_COLUMNS + SHAPE_COLUMNS:  # the columns the correction rewrites
        if name in catalog and catalog[name].dtype.kind not in "iu":
            catalog[name] = catalog.floats(name, what)
    if "ELLIPTICITY" not in catalog:
        catalog["ELLIPTICITY"] = 1.0 - ratio
    if "NUMBER" not in catalog:
        catalog["NUMBER"] = np.arange(1, catalog.nrows + 1)
    catalog["NUMBER"] = catalog.floats("NUMBER", what).astype(np.int64) \
        if catalog["NUMBER"].dtype.kind not in "iu" else catalog["NUMBER"]
    return catalog


def peaks(catalog):
    return np.column_stack([catalog["XPEAK_IMAGE"], catalog["YPEAK_IMAGE"]])


def flattened(candidates, counts):
    """The KD-tree's lists of neighbours as one index array (in one pass, not one small
    array per object)."""
    from itertools import chain
    return np.fromiter(chain.from_iterable(candidates), dtype=np.int64, count=int(counts.sum()))


def nearest_within(points, others, radius):
    """Index of the nearest of `others` within `radius` (inclusive) of each point, or -1.
    Ties go to the lowest index, as CluSex's argmin does."""
    from scipy.spatial import cKDTree
    nearest = np.full(len(points), -1)
    if len(others) == 0 or len(points) == 0:
        return nearest
    candidates = cKDTree(others).query_ball_point(points, r=radius)
    counts = np.fromiter((len(c) for c in candidates), dtype=np.int64, count=len(candidates))
    if counts.sum() == 0:
        return nearest
    owner = np.repeat(np.arange(len(points)), counts)
    other = flattened(candidates, counts)
    distance = np.hypot(*(points[owner] - others[other]).T)
    order = np.lexsort((other, distance, owner))  # by point, then distance, then index
    owner, other = owner[order], other[order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    nearest[owner[first]] = other[first]
    return nearest


def correct_sizes(primary, secondary, correction):
    """CluSex's size correction of `primary` against `secondary` (a new catalog).

    Matched (nearest peak within match_radius): when the primary size K x A exceeds the
    counterpart's by more than frac_tol, the object takes the counterpart's size and
    shape (K, A, B, E, THETA, FLUX_RADIUS, ISOAREA), and K is further multiplied by
    scale_cor when it exceeds scale_cor x the counterpart's size by more than frac_tol.
    Unmatched: K is multiplied by redu_coef, floored so that K x A >= min_radius.
    Returns (corrected catalog, number replaced, number reduced).
    """
    c = correction
    out = primary.take(np.arange(primary.nrows))  # copies that keep their read text
    match = nearest_within(peaks(primary), peaks(secondary), c.match_radius)
    matched = match >= 0
    size_p = kron_size(primary)
    j = np.where(matched, match, 0)
    size_s = np.maximum(kron_size(secondary)[j], MIN_SIZE) if secondary.nrows \
        else np.ones(primary.nrows)
    replace = matched & ((size_p - size_s) / size_s > c.frac_tol)
    for name in SHAPE_COLUMNS:
        if name in out and name in secondary and replace.any():
            out[name] = np.array(out[name], copy=True)  # a new array: written as computed
            out[name][replace] = secondary[name][j[replace]]
    enlarge = replace & (size_p / (c.scale_cor * size_s) - 1.0 > c.frac_tol)
    reduce = ~matched
    out["KRON_RADIUS"] = np.array(out["KRON_RADIUS"], copy=True)
    out["KRON_RADIUS"][enlarge] = c.scale_cor * secondary["KRON_RADIUS"][j[enlarge]]
    kron = out["KRON_RADIUS"]
    kron[reduce] *= c.redu_coef
    area = out["A_IMAGE"]
    with np.errstate(divide="ignore", invalid="ignore"):
        floored = reduce & (kron * area < c.min_radius) & (area > 0)
        kron[floored] = c.min_radius / area[floored]
    return out, int(replace.sum()), int(reduce.sum())


def covered_by_ellipses(points, catalog, join_scale):
    """True for each point strictly inside any of the catalog's join ellipses
    (JoinScale x KRON_RADIUS x A, the suite's one Kron ellipse).

    Each ellipse asks a KD-tree of the points for those within its own major axis; only
    those candidate pairs get the exact rotated-ellipse test.
    """
    from scipy.spatial import cKDTree
    covered = np.zeros(len(points), dtype=bool)
    if len(points) == 0 or catalog.nrows == 0:
        return covered
    ellipses = kron_ellipses(catalog, join_scale)
    candidates = cKDTree(points).query_ball_point(peaks(catalog), r=ellipses.major)
    counts = np.fromiter((len(c) for c in candidates), dtype=np.int64, count=len(candidates))
    if counts.sum() == 0:
        return covered
    owner = np.repeat(np.arange(catalog.nrows), counts)
    point = flattened(candidates, counts)
    mine = ellipses.take(owner)
    inside = inside_ellipses(points[point, 0], points[point, 1], mine.x, mine.y, mine.major,
                             mine.minor, mine.theta)
    covered[point[inside]] = True
    return covered


def near_any(points, catalog, radius):
    """True for each point with a catalog peak strictly closer than radius."""
    from scipy.spatial import cKDTree
    if len(points) == 0 or catalog.nrows == 0:
        return np.zeros(len(points), dtype=bool)
    distance, _ = cKDTree(peaks(catalog)).query(points, k=1)
    return distance < radius


def merge(first, second, add):
    """Catalog 1 whole, then the added catalog-2 rows renumbered after catalog 1.

    Columns are catalog 1's (missing ones in catalog 2 become NaN), every value kept as
    it came in, plus SOURCE (1 or 2).
    """
    added = second.take(add)
    start = max(first.nrows, int(first["NUMBER"].max()) if first.nrows else 0) + 1
    joined = stack_catalogs(first, added)
    joined["NUMBER"] = np.concatenate([first["NUMBER"],
                                       np.arange(start, start + added.nrows)]).astype(np.int64)
    # a catalog that is itself a join keeps its SOURCE values; the new rows get the next one
    source = first["SOURCE"] if "SOURCE" in first else np.ones(first.nrows, dtype=np.int64)
    new_source = int(source.max()) + 1 if first.nrows else 2
    joined["SOURCE"] = np.concatenate([source, np.full(added.nrows, new_source)]).astype(
        np.int64)
    return joined


def join_catalogs(first, second, settings, correction):
    """The chosen join (JoinSettings; SizeCorrection for hotcold); returns (joined
    catalog, summary counts)."""
    counts = {"catalog 1": first.nrows, "catalog 2": second.nrows}
    if settings.mode == "hotcold":
        first_c, rep1, red1 = correct_sizes(first, second, correction)
        second_c, rep2, red2 = correct_sizes(second, first, correction)
        counts.update({"resized from the other catalog": rep1 + rep2,
                       "reduced (no counterpart)": red1 + red2})
        first, second = first_c, second_c
    if settings.mode == "add-unmatched":
        reject = near_any(peaks(second), first, settings.match_radius)
    else:
        reject = covered_by_ellipses(peaks(second), first, settings.join_scale)
    joined = merge(first, second, ~reject)
    if settings.mode == "add-unmatched":
        shrink_added(joined, settings.added_kron_factor, settings.added_min_size)
    counts.update({"kept from catalog 1": first.nrows,
                   "added from catalog 2": int((~reject).sum()),
                   "rejected from catalog 2": int(reject.sum()), "joined": joined.nrows})
    return joined, counts


def shrink_added(joined, factor, min_size):
    """CluSex joincat -i: added objects' K x factor, with K x A >= min_size."""
    added = joined["SOURCE"] == joined["SOURCE"].max()
    kron = joined["KRON_RADIUS"] = np.array(joined["KRON_RADIUS"], dtype=float)  # computed
    area = joined["A_IMAGE"]
    kron[added] *= factor
    small = added & (kron * area < min_size) & (area > 0)
    kron[small] = min_size / area[small]


def main(argv=None):
    args = parse_args(argv)
    first = load_catalog(args.catalog1, "catalog 1")
    second = load_catalog(args.catalog2, "catalog 2")
    settings = JoinSettings(args.mode, args.join_scale, args.match_radius,
                            args.added_kron_factor, args.added_min_size)
    correction = SizeCorrection(args.frac_tol, args.redu_coef, args.scale_cor,
                                args.seeing_fwhm / args.pixel_scale, args.size_match_radius)
    joined, counts = join_catalogs(first, second, settings, correction)
    with Outputs() as out:
        write_catalog(out.path(args.output), joined)
        if args.regions:
            write_regions(out.path(args.regions),
                          catalog_region_lines(joined, args.scale, args.offset))
    log(f"mode {args.mode}")
    for name, value in counts.items():
        log(f"{name}: {value}")


if __name__ == "__main__":
    run_cli(main)
