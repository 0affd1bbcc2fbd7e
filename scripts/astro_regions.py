"""The suite's one ds9 region reader and writer.

Writes catalogs' Kron ellipses (from astro_ellipses, the one geometry) and boxes; reads
box, ellipse, circle, polygon and point shapes in image or physical coordinates, with
sizes in pixels, or in arcsec (") / arcmin (') when the pixel scale is known.
"""

import re

import numpy as np

from astro_common import require_file, ToolError
from astro_ellipses import kron_ellipses, saturated

REGION_HEADER = (
    "# Region file format: DS9 version 4.1\n"
    'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" select=1 '
    "highlite=1 dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1\n")
REGION_SHAPES = {"box": 5, "ellipse": 5, "circle": 3, "polygon": None, "point": 2}
# Which parameters of a shape are sizes (the rest are positions or angles).
SIZE_PARAMS = {"box": (2, 3), "ellipse": (2, 3), "circle": (2,), "polygon": (), "point": ()}
REGION_SYSTEMS = ("image", "physical", "fk5", "icrs", "galactic", "ecliptic", "fk4", "j2000",
                  "wcs", "linear", "amplifier", "detector")
SOURCE_COLOURS = {1: "red", 2: "blue", 3: "green", 4: "magenta", 5: "cyan"}
ARCSEC_PER_UNIT = {'"': 1.0, "'": 60.0}


class Region:
    """One ds9 shape in image coordinates (1-based pixels, angles in degrees)."""

    def __init__(self, shape, params, line, properties=""):
        self.shape = shape
        self.params = params
        self.line = line
        self.properties = properties

    def __repr__(self):
        return f"Region({self.shape}, {self.params})"


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def write_regions(path, lines, system="image"):
    """Write a ds9 region file: the standard header, the coordinate system, the shapes."""
    with open(path, "w") as handle:
        handle.write(REGION_HEADER)
        handle.write(system + "\n")
        handle.writelines(line + "\n" for line in lines)


def ellipse_region_lines(x, y, major, minor, theta, colours, texts=None, unit=""):
    """ds9 `ellipse` lines (semi-axes, angle in degrees); colours and texts per row.
    With a unit ('"' for arcsec) the centre is RA, Dec in degrees, written to 1e-7 deg."""
    texts = texts if texts is not None else [None] * len(x)
    fmt = ".7f" if unit else ".7g"
    rows = zip(*(np.asarray(v, dtype=float).tolist() for v in (x, y, major, minor, theta)),
               colours, texts)
    return [f"ellipse({xi:{fmt}},{yi:{fmt}},{a:.4f}{unit},{b:.4f}{unit},{t:.3f}) # color={c}"
            + (f" text={{{label}}}" if label is not None else "")
            for xi, yi, a, b, t, c, label in rows]


def box_region_line(x_centre, y_centre, width, height, colour="red", text=None):
    """One ds9 `box` line (1-based centre, full sides, no rotation)."""
    label = f" text={{{text}}}" if text is not None else ""
    return f"box({x_centre:g},{y_centre:g},{width:g},{height:g},0) # color={colour}{label}"


def catalog_region_lines(catalog, scale=1.0, offset=0.0, coords="image", pixel_scale=None):
    """ds9 lines for a catalog's Kron ellipses (astro_ellipses.kron_ellipses), coloured by
    SOURCE (red 1, blue 2, ...), the NUMBER as text; saturated objects (FLAGS bit 4) also
    get a red point. coords 'fk5' uses ALPHA/DELTA_J2000 and sizes in arcsec (pixel_scale,
    arcsec/px), assuming north up, east left as the angle's reference."""
    ellipses = kron_ellipses(catalog, scale, offset)
    x, y, major, minor = ellipses.x, ellipses.y, ellipses.major, ellipses.minor
    unit, fmt = "", ".7g"
    if coords == "fk5":
        catalog.require(["ALPHA_J2000", "DELTA_J2000"], "the catalog (for fk5 regions)")
        x, y = (np.asarray(catalog[k], dtype=float) for k in ("ALPHA_J2000", "DELTA_J2000"))
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ToolError("the catalog has no sky positions (ALPHA_J2000/DELTA_J2000 are "
                            "NaN: the image had no WCS); use image coordinates")
        major, minor, unit, fmt = major * pixel_scale, minor * pixel_scale, '"', ".7f"
    source = catalog["SOURCE"] if "SOURCE" in catalog else np.ones(catalog.nrows, dtype=int)
    colours = [SOURCE_COLOURS.get(int(s), "green") for s in source]
    numbers = catalog["NUMBER"] if "NUMBER" in catalog else np.arange(1, catalog.nrows + 1)
    lines = ellipse_region_lines(x, y, major, minor, ellipses.theta, colours,
                                 [int(n) for n in numbers], unit=unit)
    lines += [f"point({x[i]:{fmt}},{y[i]:{fmt}}) # point=boxcircle color=red"
              for i in np.flatnonzero(saturated(catalog))]
    return lines


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

def read_regions(path, what="the region file", pixel_scale=None, physical_offset=(0.0, 0.0)):
    """Read a ds9 region file in image (or physical) coordinates.

    Shapes: box, ellipse, circle, polygon (and point, kept as a marker). Any other shape,
    another coordinate system, or a malformed line is an error naming the line.
    pixel_scale (arcsec/px) turns sizes given in " or ' into pixels; without it such a
    size is an error. physical_offset = (LTV1, LTV2) of the image's header: a physical
    position p is the image pixel p + LTV.
    """
    require_file(path, what)
    regions = []
    system = "image"
    with open(path, encoding="utf-8-sig", errors="replace") as handle:  # -sig: BOM
        for number, raw in enumerate(handle, 1):
            text = raw.strip()
            if not text or text.startswith("#") or text.startswith("global"):
                continue
            for part in [p.strip() for p in text.split(";") if p.strip()]:
                body, _, properties = part.partition("#")
                body = body.strip()
                if body.lower() in REGION_SYSTEMS:
                    system = body.lower()
                    continue
                region = _parse_region(body, properties, number, system, what, pixel_scale)
                if system == "physical":
                    _shift(region, physical_offset)
                regions.append(region)
    return regions


def _parse_region(body, properties, number, system, what, pixel_scale):
    match = re.match(r"^([+-]?)\s*([A-Za-z]+)\s*\((.*)\)$", body)
    if not match:
        raise ToolError(f"{what}, line {number}: '{body[:50]}' is not a ds9 shape")
    if match.group(1) == "-":
        raise ToolError(f"{what}, line {number}: exclusion regions ('-{match.group(2)}') "
                        "are not supported")
    shape = match.group(2).lower()
    if shape not in REGION_SHAPES:
        raise ToolError(f"{what}, line {number}: unknown shape '{shape}' (supported: "
                        f"{', '.join(REGION_SHAPES)})")
    if system not in ("image", "physical"):
        raise ToolError(f"{what}, line {number}: coordinates are '{system}'; save the "
                        "regions in image coordinates")
    params = [_parameter(text.strip(), k in SIZE_PARAMS[shape], pixel_scale, body, number,
                         what) for k, text in enumerate(match.group(3).split(","))]
    expected = REGION_SHAPES[shape]
    if shape in ("box", "ellipse") and len(params) == 4:
        params.append(0.0)  # no angle given
    if expected is not None and len(params) != expected or \
            shape == "polygon" and (len(params) < 6 or len(params) % 2):
        raise ToolError(f"{what}, line {number}: {shape} has {len(params)} parameters")
    if not all(np.isfinite(params)):
        raise ToolError(f"{what}, line {number}: '{body[:50]}' has a NaN or infinite "
                        "parameter")
    return Region(shape, params, number, properties.strip())


def _parameter(text, is_size, pixel_scale, body, number, what):
    """One shape parameter in pixels; a size in arcsec or arcmin needs the pixel scale."""
    unit = text[-1:] if text[-1:] in ARCSEC_PER_UNIT else ""
    try:
        value = float(text[:-1] if unit else text)
    except ValueError:
        raise ToolError(f"{what}, line {number}: '{body[:50]}' has a non-numeric "
                        "parameter") from None
    if not unit:
        return value
    if not is_size:
        raise ToolError(f"{what}, line {number}: '{text}' is a position in angular units; "
                        "positions must be pixels in image coordinates")
    if not pixel_scale:
        raise ToolError(f"{what}, line {number}: the size '{text}' is in angular units but "
                        "the image's pixel scale is unknown (no WCS); give sizes in pixels")
    return value * ARCSEC_PER_UNIT[unit] / pixel_scale


def _shift(region, offset):
    """Physical -> image coordinates (LTV1, LTV2 added to every position)."""
    p = region.params
    positions = range(0, len(p), 2) if region.shape == "polygon" else (0,)
    for index in positions:
        p[index] += offset[0]
        p[index + 1] += offset[1]
