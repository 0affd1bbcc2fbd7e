#!/usr/bin/env python
"""Draw catalog ellipses (and ds9 regions, and a mask) over a sky image, as PNG or PDF.

Each catalog is drawn in its own colour; a joined hot/cold catalog gets one colour per run.
Tens of thousands of objects draw in about a second.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import read_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    between, finite_float, log, new_parser, Outputs, positive_float, run_cli, ToolError,
)
from astro_ellipses import kron_ellipses, shape_ellipses  # noqa: E402
from astro_images import (  # noqa: E402
    add_image_arguments, mask_from_image, physical_offset, pixel_scale_of, read_image_argument,
)
from astro_pictures import (  # noqa: E402
    catalog_layer, figure_format, LAYER_COLOURS, region_patches, render_overlay, SOURCE_LABELS,
    STRETCHES,
)
from astro_regions import read_regions  # noqa: E402

COLOUR_MAPS = ("gray", "gray_r", "viridis", "magma", "inferno", "cividis", "hot", "bone")


def parse_args(argv=None):
    parser = new_parser(__doc__)
    add_image_arguments(parser)
    parser.add_argument("--catalog", action="append", default=[],
                        help="catalog to draw (repeat for several, each its own colour)")
    parser.add_argument("--catalog-label", action="append", default=[],
                        help="legend label of each catalog, in the same order")
    parser.add_argument("--regions", action="append", default=[],
                        help="ds9 region file to draw (repeatable)")
    parser.add_argument("--mask", help="mask image drawn as a translucent layer")
    parser.add_argument("--output", required=True, help="output .png or .pdf")
    parser.add_argument("--format", choices=("png", "pdf"),
                        help="output format (default: from the file name, else png)")
    parser.add_argument("--source-labels", default=",".join(SOURCE_LABELS),
                        help="legend names of a joined catalog's SOURCE 1, 2, ... "
                             f"(default '{','.join(SOURCE_LABELS)}')")
    parser.add_argument("--ellipse", default="sextractor", choices=("sextractor", "clusex"))
    parser.add_argument("--k", type=positive_float, default=6.0,
                        help="k x (A, B) for 'sextractor'")
    parser.add_argument("--scale", type=positive_float, default=1.5,
                        help="Scale in Scale x KRON_RADIUS x A + Offset for 'clusex'")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--peak", action="store_true",
                        help="centre ellipses on the peak pixel (CluSex) not the barycentre")
    parser.add_argument("--stretch", default="asinh", choices=STRETCHES)
    parser.add_argument("--percentiles", type=between(0, 100), nargs=2, default=(0.5, 99.5),
                        metavar=("LOW", "HIGH"), help="stretch limits (default 0.5 99.5)")
    parser.add_argument("--cmap", default="gray", choices=COLOUR_MAPS)
    parser.add_argument("--labels", action="store_true", help="write object numbers")
    parser.add_argument("--max-mag", type=finite_float,
                        help="draw only objects with MAG_BEST < this")
    parser.add_argument("--max-class-star", type=finite_float,
                        help="draw only objects with CLASS_STAR below this (galaxies: 0.6 as "
                             "DGCG)")
    parser.add_argument("--flags-below", type=int,
                        help="draw only objects with FLAGS below this value")
    parser.add_argument("--title")
    parser.add_argument("--width-px", type=int, default=800)
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--crop", type=int, nargs=4, metavar=("X0", "X1", "Y0", "Y1"),
                        help="show only this 1-based pixel range")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    if args.width_px < 100 or args.dpi < 10:
        raise ToolError("--width-px must be at least 100 and --dpi at least 10")
    if args.percentiles[0] >= args.percentiles[1]:
        raise ToolError(f"--percentiles: the lower limit {args.percentiles[0]:g} must be "
                        f"below the upper limit {args.percentiles[1]:g}")
    if args.crop and (args.crop[0] > args.crop[1] or args.crop[2] > args.crop[3]):
        raise ToolError("--crop: give X0 <= X1 and Y0 <= Y1")


def select_rows(catalog, max_mag, flags_below, what, max_class_star=None):
    keep = np.ones(catalog.nrows, dtype=bool)
    if max_mag is not None:
        keep &= catalog.floats("MAG_BEST", what, finite=False) < max_mag
    if max_class_star is not None:
        keep &= catalog.floats("CLASS_STAR", what, finite=False) < max_class_star
    if flags_below is not None:
        keep &= catalog.floats("FLAGS", what, finite=False) < flags_below
    return catalog.take(keep)


def catalog_ellipses(catalog, kind, k, scale, offset, peak, what):
    """The ellipses to draw: SExtractor's k x (A, B), or CluSex's Kron ellipse."""
    centre = "peak" if peak else "barycentre"
    if kind == "sextractor":
        return shape_ellipses(catalog, k, centre, what)
    return kron_ellipses(catalog, scale, offset, centre, what)


def main(argv=None):
    args = parse_args(argv)
    image = read_image_argument(args)
    mask = mask_from_image(args.mask, image.shape) if args.mask else None
    layers = []
    for index, path in enumerate(args.catalog):
        what = f"catalog {index + 1}"
        catalog = select_rows(read_catalog(path, what), args.max_mag, args.flags_below, what,
                              args.max_class_star)
        label = args.catalog_label[index] if index < len(args.catalog_label) else what
        ellipses = catalog_ellipses(catalog, args.ellipse, args.k, args.scale, args.offset,
                                    args.peak, what if len(args.catalog) > 1 else "the catalog")
        layers.append(catalog_layer(catalog, ellipses, label,
                                    LAYER_COLOURS[index % len(LAYER_COLOURS)],
                                    [t.strip() for t in args.source_labels.split(",")]))
        log(f"{what}: drawing {catalog.nrows} ellipses")
    patches = []
    if args.regions:
        for number, path in enumerate(args.regions, 1):
            shapes = read_regions(path, pixel_scale=pixel_scale_of(image),
                                  physical_offset=physical_offset(image.header))
            patches.extend(region_patches(shapes))
            log(f"regions: {len(shapes)} shape(s) from region file {number}")
    with Outputs() as out:
        render_overlay(image.data, layers, out.path(args.output), stretch=args.stretch,
                       mask=mask, wcs=image.wcs, title=args.title, labels=args.labels,
                       regions=patches, cmap=args.cmap, percentiles=args.percentiles,
                       width_px=args.width_px, dpi=args.dpi, crop=args.crop,
                       fmt=args.format or figure_format(args.output))
    log(f"wrote {args.output}")


if __name__ == "__main__":
    run_cli(main)
