#!/usr/bin/env python
"""Write a catalog for the programs of the CluSex world: CluSex's header-less 15 columns
(what DGCG, the GALFIT driver for cluster galaxies, reads), or a SExtractor ASCII_HEAD
catalog (numbered '#   1 NAME' header lines), from any catalog this suite reads.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import CLUSEX_COLUMNS, INTEGER_COLUMNS, read_catalog  # noqa: E402
from astro_common import log, new_parser, Outputs, run_cli, ToolError  # noqa: E402

# SExtractor's own formats for CluSex's columns (ASCII_HEAD widths and decimals).
SEXTRACTOR_FORMATS = {
    "NUMBER": "%10d", "ALPHA_J2000": "%11.7f", "DELTA_J2000": "%+11.7f",
    "XPEAK_IMAGE": "%6d", "YPEAK_IMAGE": "%6d", "MAG_BEST": "%8.4f", "KRON_RADIUS": "%5.2f",
    "FLUX_RADIUS": "%10.3f", "ISOAREA_IMAGE": "%9d", "A_IMAGE": "%9.3f",
    "ELLIPTICITY": "%8.3f", "THETA_IMAGE": "%5.1f", "BACKGROUND": "%12.7g",
    "CLASS_STAR": "%5.3f", "FLAGS": "%3d",
}
DESCRIPTIONS = {
    "NUMBER": "Running object number", "ALPHA_J2000": "Right ascension (J2000) [deg]",
    "DELTA_J2000": "Declination (J2000) [deg]", "XPEAK_IMAGE": "x-coordinate of the "
    "brightest pixel [pixel]", "YPEAK_IMAGE": "y-coordinate of the brightest pixel [pixel]",
    "MAG_BEST": "Best of MAG_AUTO and MAG_ISOCOR [mag]", "KRON_RADIUS": "Kron apertures in "
    "units of A or B", "FLUX_RADIUS": "Fraction-of-light radii [pixel]", "ISOAREA_IMAGE":
    "Isophotal area above Analysis threshold [pixel**2]", "A_IMAGE": "Profile RMS along "
    "major axis [pixel]", "ELLIPTICITY": "1 - B_IMAGE/A_IMAGE", "THETA_IMAGE": "Position "
    "angle (CCW/x) [deg]", "BACKGROUND": "Background at centroid position [count]",
    "CLASS_STAR": "S/G classifier output", "FLAGS": "Extraction flags",
}


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument("--catalog", required=True, help="catalog (any format the suite reads)")
    parser.add_argument("--format", default="clusex", choices=("clusex", "sextractor"),
                        help="clusex: CluSex's 15 header-less columns; sextractor: the same "
                             "15 as SExtractor's ASCII_HEAD catalog")
    parser.add_argument("--output", required=True, help="the exported catalog")
    return parser.parse_args(argv)


def clusex_columns(catalog):
    """CluSex's 15 columns, in its order; ELLIPTICITY from B_IMAGE/A_IMAGE when missing.
    A missing column is an error naming it (DGCG needs all 15)."""
    if "ELLIPTICITY" not in catalog and {"A_IMAGE", "B_IMAGE"} <= set(catalog):
        a, b = catalog.floats("A_IMAGE", finite=False), catalog.floats("B_IMAGE", finite=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            catalog["ELLIPTICITY"] = np.where(a > 0, 1.0 - b / a, 0.0)
    missing = [name for name in CLUSEX_COLUMNS if name not in catalog]
    if "CLASS_STAR" in missing:
        raise ToolError("the catalog lacks CLASS_STAR, which DGCG selects galaxies with: make "
                        "it with Extract sources (it computes CLASS_STAR)"
                        + (f"; it also lacks {', '.join(m for m in missing if m != 'CLASS_STAR')}"
                           if len(missing) > 1 else ""))
    catalog.require(CLUSEX_COLUMNS)
    return [catalog.floats(name, finite=False) for name in CLUSEX_COLUMNS]


def format_rows(columns, formats):
    """One text line per object; integer columns as integers (a missing value as 0)."""
    texts = []
    for name, values, fmt in zip(CLUSEX_COLUMNS, columns, formats):
        if name in INTEGER_COLUMNS:
            values = np.nan_to_num(values, nan=0.0).round().astype(np.int64)
        texts.append([fmt % v for v in values.tolist()])
    return [" ".join(row) for row in zip(*texts)]


def export(catalog, kind):
    """The exported file's lines."""
    columns = clusex_columns(catalog)
    if kind == "clusex":
        formats = ["%d" if n in INTEGER_COLUMNS else "%.7g" for n in CLUSEX_COLUMNS]
        formats[1:3] = ["%.7f", "%.7f"]  # RA and Dec to 1e-7 degrees
        return format_rows(columns, formats)
    header = [f"#{k:4d} {name:<22} {DESCRIPTIONS[name]}"
              for k, name in enumerate(CLUSEX_COLUMNS, 1)]
    return header + format_rows(columns, [SEXTRACTOR_FORMATS[n] for n in CLUSEX_COLUMNS])


def main(argv=None):
    args = parse_args(argv)
    catalog = read_catalog(args.catalog, "the catalog")
    lines = export(catalog, args.format)
    with Outputs() as out:
        with open(out.path(args.output), "w") as handle:
            handle.writelines(line + "\n" for line in lines)
    kind = "CluSex's" if args.format == "clusex" else "SExtractor ASCII_HEAD"
    log(f"wrote {catalog.nrows} objects in {kind} {len(CLUSEX_COLUMNS)} columns")


if __name__ == "__main__":
    run_cli(main)
