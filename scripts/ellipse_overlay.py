#!/usr/bin/env python
"""Draw catalog ellipses (and ds9 regions, and a mask) over a sky image, as PNG or PDF.

Each catalog is drawn with one matplotlib EllipseCollection, so tens of thousands of
objects render in seconds.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_common import (  # noqa: E402
    add_image_arguments, ellipse_axes, ellipse_centres, log, mask_from_image, read_catalog,
    read_image_argument, read_regions, run_cli, ToolError,
)

LAYER_COLOURS = ("#ff3b30", "#00c7ff", "#ffd60a", "#34c759", "#ff9f0a", "#bf5af2")
STRETCHES = ("asinh", "linear", "log", "sqrt", "zscale")


def catalog_layer(catalog, kind="sextractor", label="", colour=LAYER_COLOURS[0], k=6.0,
                  scale=1.0, offset=0.0, peak=False):
    """What to draw for one catalog: 0-based centres, full axes (px), angles (deg)."""
    x, y = ellipse_centres(catalog, peak=peak)
    major, minor, theta = ellipse_axes(catalog, kind, k=k, scale=scale, offset=offset)
    numbers = catalog["NUMBER"] if "NUMBER" in catalog else np.arange(1, len(x) + 1)
    layer = {"x": x - 1.0, "y": y - 1.0, "width": 2.0 * np.abs(major),
             "height": 2.0 * np.abs(minor), "angle": theta, "colour": colour,
             "label": label, "numbers": numbers, "legend": [(colour, label, len(x))]}
    if "SOURCE" in catalog and catalog.nrows:  # a joined catalog: one colour per input
        source = np.asarray(catalog["SOURCE"]).astype(int)
        palette = {s: LAYER_COLOURS[(i + LAYER_COLOURS.index(colour)) % len(LAYER_COLOURS)]
                   if colour in LAYER_COLOURS else colour
                   for i, s in enumerate(sorted(set(source)))}
        layer["colour"] = [palette[s] for s in source]
        layer["legend"] = [(palette[s], f"{label}: SOURCE {s}", int((source == s).sum()))
                           for s in sorted(palette)]
    return layer


def image_norm(data, stretch="asinh", percentiles=(0.5, 99.5)):
    """A matplotlib normalisation for a sky image (astropy.visualization)."""
    from astropy import visualization as vis
    stretches = {"asinh": vis.AsinhStretch(0.1), "linear": vis.LinearStretch(),
                 "log": vis.LogStretch(), "sqrt": vis.SqrtStretch(),
                 "zscale": vis.LinearStretch()}
    if stretch == "zscale":
        interval = vis.ZScaleInterval()
    else:
        interval = vis.AsymmetricPercentileInterval(*percentiles)
    # the limits come from at most about a million pixels: sorting a large image for its
    # percentiles would take longer than drawing it
    step = max(1, int(np.sqrt(data.size / 1e6)))
    sample = data[::step, ::step]
    finite = sample[np.isfinite(sample)]
    return vis.ImageNormalize(finite if finite.size else sample, interval=interval,
                              stretch=stretches[stretch], clip=True)


def render_overlay(data, layers, output, stretch="asinh", mask=None, wcs=None, title=None,
                   labels=False, regions=(), cmap="gray", percentiles=(0.5, 99.5),
                   width_px=800, dpi=100, crop=None, fmt=None):
    """Draw the image and each layer's ellipses; write PNG or PDF (by the file's extension
    or the `output` suffix). crop = (x0, x1, y0, y1), 1-based inclusive pixel limits."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import EllipseCollection

    ny, nx = data.shape
    fig_w = width_px / dpi
    fig_h = fig_w * (ny / nx) * 0.92 + 0.6
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes([0.1, 0.08, 0.85, 0.84], projection=wcs) if wcs is not None \
        else fig.add_axes([0.1, 0.08, 0.85, 0.84])
    ax.imshow(data, origin="lower", cmap=cmap, norm=image_norm(data, stretch, percentiles),
              interpolation="nearest")
    if mask is not None and mask.any():
        shade = np.ma.masked_where(~mask, mask.astype(float))
        ax.imshow(shade, origin="lower", cmap="autumn", alpha=0.35, interpolation="nearest",
                  vmin=0, vmax=1)
    for layer in layers:
        ax.add_collection(EllipseCollection(
            layer["width"], layer["height"], layer["angle"], units="xy",
            offsets=np.column_stack([layer["x"], layer["y"]]),
            offset_transform=ax.transData, facecolors="none", edgecolors=layer["colour"],
            linewidths=0.8, label=layer["label"]))
        if labels:
            colours = layer["colour"] if isinstance(layer["colour"], list) else \
                [layer["colour"]] * len(layer["x"])
            for x, y, number, colour in zip(layer["x"], layer["y"], layer["numbers"], colours):
                ax.text(x, y, str(int(number)), color=colour, fontsize=6, ha="center",
                        va="center", clip_on=True)
    for patch in regions:
        ax.add_patch(patch)
    if crop:
        ax.set_xlim(crop[0] - 1.5, crop[1] - 0.5)
        ax.set_ylim(crop[2] - 1.5, crop[3] - 0.5)
    else:
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(-0.5, ny - 0.5)
    if wcs is not None:
        ax.set_xlabel("RA")
        ax.set_ylabel("Dec")
    else:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    if any(layer["label"] for layer in layers):
        from matplotlib.lines import Line2D
        handles = [Line2D([], [], color=colour, label=f"{text} ({count})")
                   for layer in layers if layer["label"]
                   for colour, text, count in layer["legend"]]
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(output, dpi=dpi, format=fmt or _figure_format(output))
    plt.close(fig)


def region_patches(regions, colour="#ffd60a"):
    """matplotlib patches for ds9 shapes (1-based image coordinates -> 0-based axes)."""
    from matplotlib import patches
    drawn = []
    style = {"fill": False, "edgecolor": colour, "linewidth": 0.9}
    for region in regions:
        p = region.params
        if region.shape == "box":
            drawn.append(patches.Rectangle((p[0] - 1 - p[2] / 2, p[1] - 1 - p[3] / 2), p[2], p[3],
                                           angle=p[4], rotation_point="center", **style))
        elif region.shape == "ellipse":
            drawn.append(patches.Ellipse((p[0] - 1, p[1] - 1), 2 * p[2], 2 * p[3], angle=p[4],
                                         **style))
        elif region.shape == "circle":
            drawn.append(patches.Circle((p[0] - 1, p[1] - 1), p[2], **style))
        elif region.shape == "polygon":
            xy = np.column_stack([np.asarray(p[0::2]) - 1, np.asarray(p[1::2]) - 1])
            drawn.append(patches.Polygon(xy, closed=True, **style))
        elif region.shape == "point":
            drawn.append(patches.Circle((p[0] - 1, p[1] - 1), 2.0, **style))
    return drawn


def _figure_format(output):
    return "pdf" if str(output).lower().endswith(".pdf") else "png"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--ellipse", default="sextractor", choices=("sextractor", "clusex"))
    parser.add_argument("--k", type=float, default=6.0, help="k x (A, B) for 'sextractor'")
    parser.add_argument("--scale", type=float, default=1.5,
                        help="Scale in Scale x KRON_RADIUS x A + Offset for 'clusex'")
    parser.add_argument("--offset", type=float, default=0.0)
    parser.add_argument("--peak", action="store_true",
                        help="centre ellipses on the peak pixel (CluSex) not the barycentre")
    parser.add_argument("--stretch", default="asinh", choices=STRETCHES)
    parser.add_argument("--percentiles", type=float, nargs=2, default=(0.5, 99.5))
    parser.add_argument("--cmap", default="gray")
    parser.add_argument("--labels", action="store_true", help="write object numbers")
    parser.add_argument("--max-mag", type=float, help="draw only objects with MAG_BEST < this")
    parser.add_argument("--flags-below", type=int,
                        help="draw only objects with FLAGS below this value")
    parser.add_argument("--title")
    parser.add_argument("--width-px", type=int, default=800)
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--crop", type=int, nargs=4, metavar=("X0", "X1", "Y0", "Y1"),
                        help="show only this 1-based pixel range")
    args = parser.parse_args(argv)
    if args.width_px < 100 or args.dpi < 10:
        raise ToolError("--width-px must be at least 100 and --dpi at least 10")
    return args


def select_rows(catalog, max_mag, flags_below, what):
    keep = np.ones(catalog.nrows, dtype=bool)
    if max_mag is not None:
        catalog.require(["MAG_BEST"], what)
        keep &= catalog["MAG_BEST"] < max_mag
    if flags_below is not None:
        catalog.require(["FLAGS"], what)
        keep &= catalog["FLAGS"] < flags_below
    return catalog.take(keep)


def main(argv=None):
    args = parse_args(argv)
    image = read_image_argument(args)
    mask = mask_from_image(args.mask, image.shape) if args.mask else None
    layers = []
    for index, path in enumerate(args.catalog):
        what = f"catalog {index + 1}"
        catalog = select_rows(read_catalog(path, what), args.max_mag, args.flags_below, what)
        label = args.catalog_label[index] if index < len(args.catalog_label) else what
        layers.append(catalog_layer(catalog, args.ellipse, label,
                                    LAYER_COLOURS[index % len(LAYER_COLOURS)], k=args.k,
                                    scale=args.scale, offset=args.offset, peak=args.peak))
        log(f"{what}: drawing {catalog.nrows} ellipses")
    patches = []
    if args.regions:
        for number, path in enumerate(args.regions, 1):
            shapes = read_regions(path)
            patches.extend(region_patches(shapes))
            log(f"regions: {len(shapes)} shape(s) from region file {number}")
    output = args.output
    render_overlay(image.data, layers, output, stretch=args.stretch, mask=mask,
                   wcs=image.wcs, title=args.title, labels=args.labels, regions=patches,
                   cmap=args.cmap, percentiles=args.percentiles, width_px=args.width_px,
                   dpi=args.dpi, crop=args.crop, fmt=args.format)
    log(f"wrote {output}")


if __name__ == "__main__":
    run_cli(main)
