#!/usr/bin/env python
"""Write a catalog's ellipses as a ds9 region file (CluSex's sex2ds9).

Each object: ellipse(X, Y, R, b, THETA) with R = Scale x KRON_RADIUS x A_IMAGE + Offset and
b = R x (1 - ELLIPTICITY), centred on the peak pixel, in image or sky (fk5) coordinates.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import read_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    finite_float, log, new_parser, Outputs, positive_float, run_cli,
)
from astro_regions import catalog_region_lines, write_regions  # noqa: E402


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument("--catalog", required=True, help="catalog (any format the suite reads)")
    parser.add_argument("--output", required=True, help="ds9 region file")
    parser.add_argument("--scale", type=positive_float, default=1.5,
                        help="R = Scale x KRON_RADIUS x A + Offset (default 1.5)")
    parser.add_argument("--offset", type=finite_float, default=0.0, help="pixels (default 0)")
    parser.add_argument("--coords", default="image", choices=("image", "fk5"),
                        help="image: pixels; fk5: RA/Dec from ALPHA/DELTA_J2000")
    parser.add_argument("--pixel-scale", type=positive_float, default=0.262,
                        help="arcsec per pixel, for fk5 sizes (default 0.262)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    catalog = read_catalog(args.catalog, "the catalog")
    catalog.require(["XPEAK_IMAGE", "YPEAK_IMAGE", "KRON_RADIUS", "A_IMAGE", "THETA_IMAGE"])
    lines = catalog_region_lines(catalog, args.scale, args.offset, args.coords,
                                 args.pixel_scale)
    with Outputs() as out:
        write_regions(out.path(args.output), lines, system=args.coords)
    log(f"wrote {catalog.nrows} ellipses ({args.coords} coordinates)")


if __name__ == "__main__":
    run_cli(main)
