#!/usr/bin/env python
"""Write a catalog's ellipses as a ds9 region file (CluSex's sex2ds9).

Each object: ellipse(X, Y, R, b, THETA) with R = Scale x KRON_RADIUS x A_IMAGE + Offset and
b = R x (1 - ELLIPTICITY), centred on the peak pixel, in image or sky (fk5) coordinates.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_common import (  # noqa: E402
    catalog_region_lines, log, read_catalog, run_cli, ToolError, write_regions,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True, help="catalog (any format the suite reads)")
    parser.add_argument("--output", required=True, help="ds9 region file")
    parser.add_argument("--scale", type=float, default=1.5,
                        help="R = Scale x KRON_RADIUS x A + Offset (default 1.5)")
    parser.add_argument("--offset", type=float, default=0.0, help="pixels (default 0)")
    parser.add_argument("--coords", default="image", choices=("image", "fk5"),
                        help="image: pixels; fk5: RA/Dec from ALPHA/DELTA_J2000")
    parser.add_argument("--pixel-scale", type=float, default=0.262,
                        help="arcsec per pixel, for fk5 sizes (default 0.262)")
    args = parser.parse_args(argv)
    if args.pixel_scale <= 0:
        raise ToolError(f"--pixel-scale must be positive (got {args.pixel_scale})")
    return args


def main(argv=None):
    args = parse_args(argv)
    catalog = read_catalog(args.catalog, "the catalog")
    catalog.require(["XPEAK_IMAGE", "YPEAK_IMAGE", "KRON_RADIUS", "A_IMAGE", "THETA_IMAGE"])
    lines = catalog_region_lines(catalog, args.scale, args.offset, args.coords,
                                 args.pixel_scale)
    write_regions(args.output, lines, system=args.coords)
    log(f"wrote {catalog.nrows} ellipses ({args.coords} coordinates)")


if __name__ == "__main__":
    run_cli(main)
