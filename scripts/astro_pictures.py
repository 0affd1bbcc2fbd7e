"""Pictures of sky images with catalogs' ellipses, ds9 shapes and masks (PNG or PDF).

Each catalog is one matplotlib EllipseCollection, so tens of thousands of objects draw in
a second. A large image is block-averaged to the picture's resolution before it is drawn:
memory stays near the image's own size and the picture looks the same.
"""

import numpy as np

LAYER_COLOURS = ("#ff3b30", "#00c7ff", "#ffd60a", "#34c759", "#ff9f0a", "#bf5af2")
STRETCHES = ("asinh", "linear", "log", "sqrt", "zscale")
# What each SOURCE of a joined catalog is, for the legend (catalog_join's SOURCE column).
SOURCE_LABELS = ("hot run", "cold run", "third catalog", "fourth catalog")


def catalog_layer(catalog, ellipses, label="", colour=LAYER_COLOURS[0],
                  source_labels=SOURCE_LABELS):
    """What to draw for one catalog: 0-based centres, full axes (px), angles (deg).
    A joined catalog (with SOURCE) gets one colour and one legend line per source."""
    numbers = catalog["NUMBER"] if "NUMBER" in catalog else np.arange(1, len(ellipses) + 1)
    layer = {"x": ellipses.x - 1.0, "y": ellipses.y - 1.0, "width": 2.0 * ellipses.major,
             "height": 2.0 * ellipses.minor, "angle": ellipses.theta, "colour": colour,
             "label": label, "numbers": numbers, "legend": [(colour, label, len(ellipses))]}
    if "SOURCE" in catalog and catalog.nrows:
        source = np.asarray(catalog["SOURCE"]).astype(int)
        first = LAYER_COLOURS.index(colour) if colour in LAYER_COLOURS else 0
        palette = {s: LAYER_COLOURS[(first + i) % len(LAYER_COLOURS)]
                   for i, s in enumerate(sorted(set(source)))}
        layer["colour"] = [palette[s] for s in source]
        layer["legend"] = [(palette[s], _source_label(s, source_labels),
                            int((source == s).sum())) for s in sorted(palette)]
        layer["label"] = label or "joined"
    return layer


def _source_label(source, labels):
    return labels[source - 1] if 0 < source <= len(labels) else f"SOURCE {source}"


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


def block_average(data, factor):
    """The image averaged over factor x factor blocks (the edge blocks over the pixels they
    have), in the image's own float type (float32 for a boolean mask). Summed a row and a
    column of blocks at a time: the work arrays hold 2/factor of the image, never a copy."""
    if factor <= 1:
        return data
    ny, nx = data.shape
    my, mx = -(-ny // factor), -(-nx // factor)
    rows, row_count = np.zeros((my, nx)), np.zeros(my)
    for k in range(factor):
        part = data[k::factor]
        rows[:len(part)] += part
        row_count[:len(part)] += 1
    blocks, column_count = np.zeros((my, mx)), np.zeros(mx)
    for k in range(factor):
        part = rows[:, k::factor]
        blocks[:, :part.shape[1]] += part
        column_count[:part.shape[1]] += 1
    blocks /= row_count[:, None] * column_count[None, :]
    kind = data.dtype if data.dtype.kind == "f" else np.float32
    return blocks.astype(kind, copy=False)


def render_overlay(data, layers, output, stretch="asinh", mask=None, wcs=None, title=None,
                   labels=False, regions=(), cmap="gray", percentiles=(0.5, 99.5),
                   width_px=800, dpi=100, crop=None, fmt=None):
    """Draw the image and each layer's ellipses; write PNG or PDF (by the file's extension
    or `fmt`). crop = (x0, x1, y0, y1), 1-based inclusive pixel limits."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import EllipseCollection

    ny, nx = data.shape
    shown_x = (crop[1] - crop[0] + 1) if crop else nx
    factor = max(1, int(shown_x // width_px)) if not crop else 1
    fig_w = width_px / dpi
    fig_h = fig_w * (ny / nx) * 0.92 + 0.6
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes([0.1, 0.08, 0.85, 0.84], projection=wcs) if wcs is not None \
        else fig.add_axes([0.1, 0.08, 0.85, 0.84])
    shown = block_average(data, factor)
    extent = (-0.5, shown.shape[1] * factor - 0.5, -0.5, shown.shape[0] * factor - 0.5)
    ax.imshow(shown, origin="lower", cmap=cmap, norm=image_norm(shown, stretch, percentiles),
              interpolation="nearest", extent=extent)
    del shown
    if mask is not None and mask.any():
        shade = block_average(mask, factor)
        if shade.dtype == bool:  # factor 1: the mask itself
            shade = shade.astype(np.float32)
        ax.imshow(np.ma.masked_where(shade <= 0, shade), origin="lower", cmap="autumn",
                  alpha=0.35, interpolation="nearest", vmin=0, vmax=1, extent=extent)
    for layer in layers:
        ax.add_collection(EllipseCollection(
            layer["width"], layer["height"], layer["angle"], units="xy",
            offsets=np.column_stack([layer["x"], layer["y"]]),
            offset_transform=ax.transData, facecolors="none", edgecolors=layer["colour"],
            linewidths=0.8, label=layer["label"]))
        if labels:
            _draw_numbers(ax, layer)
    for patch in regions:
        ax.add_patch(patch)
    if crop:
        ax.set_xlim(crop[0] - 1.5, crop[1] - 0.5)
        ax.set_ylim(crop[2] - 1.5, crop[3] - 0.5)
    else:
        ax.set_xlim(-0.5, nx - 0.5)
        ax.set_ylim(-0.5, ny - 0.5)
    ax.set_xlabel("RA" if wcs is not None else "x (pixel)")
    ax.set_ylabel("Dec" if wcs is not None else "y (pixel)")
    if any(layer["label"] for layer in layers):
        from matplotlib.lines import Line2D
        handles = [Line2D([], [], color=colour, label=f"{text} ({count})")
                   for layer in layers if layer["label"]
                   for colour, text, count in layer["legend"]]
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(output, dpi=dpi, format=fmt or figure_format(output))
    plt.close(fig)


def _draw_numbers(ax, layer):
    colours = layer["colour"] if isinstance(layer["colour"], list) else \
        [layer["colour"]] * len(layer["x"])
    for x, y, number, colour in zip(layer["x"], layer["y"], layer["numbers"], colours):
        ax.text(x, y, str(int(number)), color=colour, fontsize=6, ha="center", va="center",
                clip_on=True)


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


def figure_format(output):
    return "pdf" if str(output).lower().endswith(".pdf") else "png"


# --------------------------------------------------------------------------------------
# Morphology: a gallery of stamps and the Gini-M20 diagram
# --------------------------------------------------------------------------------------

GALLERY_COLUMNS = 8
GALLERY_ROWS_PER_PAGE = 6


def _stamp_window(box, shape, margin=4):
    rows, cols = box
    half = max(rows.stop - rows.start, cols.stop - cols.start) // 2 + margin
    yc, xc = (rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2
    return (slice(max(yc - half, 0), min(yc + half + 1, shape[0])),
            slice(max(xc - half, 0), min(xc + half + 1, shape[1])))


def _draw_stamp(ax, data, segmap, number, box, row, colours):
    from astropy import visualization as vis
    window = _stamp_window(box, data.shape)
    stamp = data[window]
    norm = vis.ImageNormalize(stamp, interval=vis.AsymmetricPercentileInterval(1, 99.8),
                              stretch=vis.AsinhStretch(0.05), clip=True)
    ax.imshow(stamp, origin="lower", cmap="gray", norm=norm, interpolation="nearest")
    ax.contour(segmap[window] == number, levels=[0.5], colors=["#00c7ff"], linewidths=0.6)
    cls = str(row["MORPH_CLASS"])
    gini, m20 = row["GINI"], row["M20"]
    ax.text(0.03, 0.97, f"{number} {cls}", transform=ax.transAxes, ha="left", va="top",
            fontsize=6, color=colours.get(cls, "white"), fontweight="bold")
    if np.isfinite(gini):
        ax.text(0.03, 0.03, f"G {gini:.2f}  M20 {m20:.2f}", transform=ax.transAxes,
                ha="left", va="bottom", fontsize=5.5, color="white")
    ax.set_xticks([])
    ax.set_yticks([])


def morphology_gallery(path, data, segmap, table, boxes, pdf=False, limit=100):
    """A contact sheet of the objects' stamps in table order (brightest first): asinh
    stretch, the segment's outline, NUMBER and class, G and M20. PNG (the first `limit`
    objects) or a multi-page PDF of every object."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    colours = {"merger": "#ff6b6b", "early": "#ffb347", "late": "#6fb7ff", "star": "#d0d0d0",
               "unreliable": "#e0e060"}
    rows = [i for i in range(table.nrows) if boxes[int(table["NUMBER"][i]) - 1] is not None]
    if not pdf:
        rows = rows[:limit]
    per_page = GALLERY_COLUMNS * GALLERY_ROWS_PER_PAGE if pdf else max(len(rows), 1)
    pages = [rows[i:i + per_page] for i in range(0, len(rows), per_page)] or [[]]
    writer = PdfPages(path) if pdf else None
    for page in pages:
        nrows = max(1, int(np.ceil(len(page) / GALLERY_COLUMNS)))
        fig, axes = plt.subplots(nrows, GALLERY_COLUMNS, squeeze=False,
                                 figsize=(GALLERY_COLUMNS * 1.25, nrows * 1.25 + 0.4), dpi=100)
        for ax in axes.ravel():
            ax.set_axis_off()
        for ax, i in zip(axes.ravel(), page):
            ax.set_axis_on()
            number = int(table["NUMBER"][i])
            _draw_stamp(ax, data, segmap, number, boxes[number - 1],
                        {name: table[name][i] for name in table}, colours)
        if not page:
            axes[0, 0].text(0, 0.5, "no objects", fontsize=9)
        fig.suptitle(f"Morphology gallery ({len(rows)} objects, brightest first)", fontsize=9)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.35 / fig.get_figheight(),
                            wspace=0.04, hspace=0.04)
        if writer is not None:
            writer.savefig(fig)
        else:
            fig.savefig(path, format="png")
        plt.close(fig)
    if writer is not None:
        writer.close()


def gini_m20_diagram(path, table, colours):
    """The Gini-M20 plane (Lotz et al. 2008) with the merger and early/late lines, each
    object coloured by its class."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.0, 4.8), dpi=100)
    m20 = np.linspace(-3.0, 0.0, 50)
    ax.plot(m20, -0.14 * m20 + 0.33, "k-", lw=1, label="mergers above: G = -0.14 M20 + 0.33")
    split = m20 <= -1.68  # the two lines cross at M20 = -1.68
    ax.plot(m20[split], 0.14 * m20[split] + 0.80, "k--", lw=1,
            label="early above, late below: G = 0.14 M20 + 0.80")
    classes = np.asarray(table["MORPH_CLASS"]).astype(str)
    for name, colour in colours.items():
        chosen = (classes == name) & np.isfinite(np.asarray(table["GINI"], dtype=float))
        if chosen.any():
            ax.scatter(table["M20"][chosen], table["GINI"][chosen], s=14, color=colour,
                       label=f"{name} ({int(chosen.sum())})", zorder=3)
    ax.set_xlim(0.0, -3.0)  # M20 runs from right to left, as Lotz et al. draw it
    ax.set_ylim(0.3, 0.8)
    ax.set_xlabel("M20")
    ax.set_ylabel("Gini")
    ax.set_title(f"Gini-M20 ({table.nrows} objects)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
