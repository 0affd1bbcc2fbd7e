#!/usr/bin/env python
"""Build an object mask from a catalog: each object's ellipse filled with its NUMBER,
saturated-star boxes and ds9 regions above every NUMBER (CluSex's makemask, with its
saturated-star regions and remellmask), and, from a data-quality (flag) image, the sky
pixels it flags (chosen MASKBITS bits, or DQ codes) with a value of their own.

Ellipses: R = Scale x KRON_RADIUS x A_IMAGE + Offset (at least 1 px), b = R x (1 - E),
centred on the peak pixel; where ellipses overlap, the smaller one keeps its pixels.
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import read_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    existing_file, finite_float, fraction, log, new_parser, non_negative_float, Outputs,
    positive_float, positive_int, run_cli, ToolError,
)
from astro_ellipses import (  # noqa: E402
    box_pixels, ellipse_bounds, inside_ellipses, kron_ellipses, saturated,
)
from astro_images import (  # noqa: E402
    add_image_arguments, header_number, physical_offset, pixel_scale_of, plane_hdu_argument,
    read_image_argument, write_fits_image,
)
from astro_regions import box_region_line, read_regions, Region, write_regions  # noqa: E402
from astro_weights import flagged_pixels, read_flag_map  # noqa: E402

MASK_COLUMNS = ("NUMBER", "XPEAK_IMAGE", "YPEAK_IMAGE", "KRON_RADIUS", "A_IMAGE",
                "THETA_IMAGE")
PEAK_MARGIN = 4        # px: CluSex's growth of a split box past the peak
MAX_PAIRS = 4_000_000  # bounding-box pixels tested at once (about 150 MB of work arrays)
MAX_LABEL = 2 ** 31 - 3  # the mask is int32; NUMBER + 1 marks boxes and regions, + 2 DQ


@dataclass(frozen=True)
class SaturationBoxes:
    """CluSex's saturated-star boxes: found from pixels >= level, grown, merged."""

    level: float = None       # None: no boxes
    scale: float = 1.7        # side x SatScale + SatOffset
    offset: float = 20.0
    min_size: float = 20.0    # smallest window searched for saturated pixels
    q: float = 0.7            # axis ratio below which a perpendicular box is added
    method: int = 3           # placement of the perpendicular box (see --sat-method)


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument("--catalog", required=True, help="catalog (any format the suite reads)")
    add_image_arguments(parser)
    parser.add_argument("--output", required=True, help="mask (FITS)")
    parser.add_argument("--scale", type=positive_float, default=1.5,
                        help="R = Scale x KRON_RADIUS x A + Offset (default 1.5)")
    parser.add_argument("--offset", type=finite_float, default=0.0, help="pixels (default 0)")
    parser.add_argument("--regions", action="append", default=[], type=existing_file,
                        help="ds9 region file to mask too (image coordinates; repeatable)")
    parser.add_argument("--saturation-regions", help="write the saturated-star boxes here")
    parser.add_argument("--satur-level", type=finite_float,
                        help="saturation level (default: the image header's SATURATE)")
    parser.add_argument("--sat-scale", type=positive_float, default=1.7,
                        help="box side x SatScale + SatOffset (default 1.7)")
    parser.add_argument("--sat-offset", type=finite_float, default=20.0,
                        help="pixels (default 20)")
    parser.add_argument("--min-sat-size", type=non_negative_float, default=20.0,
                        help="smallest side of the window searched for saturated pixels "
                             "(default 20)")
    parser.add_argument("--sat-q", type=fraction, default=0.7,
                        help="axis ratio below which a perpendicular box is added (default 0.7)")
    parser.add_argument("--sat-method", type=int, default=3, choices=(0, 1, 2, 3, 4),
                        help="placement of the perpendicular box: 0 none, 1 centred on the "
                             "peak, 2 grown to the peak, 3 grown and centred (default), 4 as 3 "
                             "with the signed maximum")
    parser.add_argument("--binary", action="store_true",
                        help="write 0/1 (1 = masked), ready for sep_extract's mask input")
    parser.add_argument("--remove", default="",
                        help="NUMBERs whose pixels are set back to 0, e.g. 3,17")
    parser.add_argument("--remove-file", type=existing_file,
                        help="one-column file of NUMBERs to remove")
    parser.add_argument("--remove-at", action="append", default=[], metavar="X,Y",
                        help="remove the object whose mask covers this 1-based pixel")
    dq = parser.add_argument_group("data-quality pixels (a flag image)")
    dq.add_argument("--flag-image", type=existing_file,
                    help="integer flag map (FITS) whose flagged pixels are masked too")
    dq.add_argument("--flag-hdu", type=plane_hdu_argument,
                    help="its HDU: a number, a name (MASKBITS) or 'auto'")
    chosen = dq.add_mutually_exclusive_group()
    chosen.add_argument("--flag-bits", type=positive_int,
                        help="mask pixels with any of these bits set (a sum of powers of "
                             "2: 2 BRIGHT + 8 SATUR_R = 10); default: any non-zero value")
    chosen.add_argument("--flag-codes", type=code_list,
                        help="mask pixels whose value is one of these codes, e.g. 3,4 "
                             "(DECam ood: saturated, bleed trail)")
    return parser.parse_args(argv)


def code_list(text):
    """argparse type: whole numbers separated by commas."""
    import argparse
    try:
        codes = [int(item) for item in str(text).split(",") if item.strip()]
    except ValueError:
        codes = []
    if not codes or min(codes) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of positive whole numbers "
                                         "such as 3,4")
    return codes


# --------------------------------------------------------------------------------------
# Ellipses
# --------------------------------------------------------------------------------------

def object_numbers(catalog):
    """The NUMBER column as mask labels: whole numbers from 1 to MAX_LABEL."""
    numbers = catalog.floats("NUMBER")
    bad = (numbers < 1) | (numbers > MAX_LABEL) | (numbers != np.round(numbers))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = f"{numbers[row]:.0f}" if numbers[row] == round(numbers[row]) \
            else f"{numbers[row]:g}"
        raise ToolError(f"the catalog: {catalog.row_name(row)} has NUMBER {shown}; "
                        f"mask labels must be whole numbers from 1 to {MAX_LABEL} (0 is sky)")
    return numbers.astype(np.int64)


def paint_ellipses(shape, numbers, ellipses):
    """Label image: each pixel strictly inside ellipses gets the NUMBER of the smallest one
    (ties: the first in the catalog). Every object's bounding box is tested at once."""
    ny, nx = shape
    if len(numbers) == 0:
        return np.zeros(shape, dtype=np.int32)
    x0, y0 = ellipses.x - 1.0, ellipses.y - 1.0   # 0-based array positions
    major, minor, theta = ellipses.major, ellipses.minor, ellipses.theta
    area = major * minor
    order = np.lexsort((np.arange(len(area)), area))     # smallest first
    rank_label = np.concatenate([np.asarray(numbers)[order], [0]]).astype(np.int32)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    best = np.full(ny * nx, len(order), dtype=np.int32)  # len(order) = no ellipse
    hx, hy = ellipses.bounds()
    xlo = np.clip(np.ceil(x0 - hx), 0, nx).astype(np.int64)
    xhi = np.clip(np.floor(x0 + hx) + 1, 0, nx).astype(np.int64)
    ylo = np.clip(np.ceil(y0 - hy), 0, ny).astype(np.int64)
    yhi = np.clip(np.floor(y0 + hy) + 1, 0, ny).astype(np.int64)
    for owner, px, py in box_pixels(xlo, xhi, ylo, yhi, MAX_PAIRS):
        inside = inside_ellipses(px, py, x0[owner], y0[owner], major[owner], minor[owner],
                                 theta[owner])
        np.minimum.at(best, (py * nx + px)[inside], rank[owner[inside]])
    return rank_label[best].reshape(shape)


# --------------------------------------------------------------------------------------
# Saturated stars
# --------------------------------------------------------------------------------------

class Box:
    """A box in 1-based inclusive pixel limits."""

    def __init__(self, x0, x1, y0, y1, number):
        self.x0, self.x1, self.y0, self.y1, self.number = x0, x1, y0, y1, number

    @property
    def centre(self):
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0

    @property
    def size(self):
        return self.x1 - self.x0 + 1, self.y1 - self.y0 + 1

    def clipped(self, nx, ny):
        return Box(max(self.x0, 1), min(self.x1, nx), max(self.y0, 1), min(self.y1, ny),
                   self.number)

    def overlaps(self, other):
        return (self.x0 <= other.x1 and other.x0 <= self.x1 and self.y0 <= other.y1
                and other.y0 <= self.y1)

    def union(self, other):
        return Box(min(self.x0, other.x0), max(self.x1, other.x1), min(self.y0, other.y0),
                   max(self.y1, other.y1), self.number)

    def region_line(self):
        (xc, yc), (sx, sy) = self.centre, self.size
        return box_region_line(xc, yc, sx, sy, "red", self.number)

    def region(self):
        (xc, yc), (sx, sy) = self.centre, self.size
        return Region("box", [xc, yc, sx, sy, 0.0], 0)


def box_from_centre(xc, yc, sx, sy, number):
    return Box(int(np.floor(xc - (sx - 1) / 2.0)), int(np.ceil(xc + (sx - 1) / 2.0)),
               int(np.floor(yc - (sy - 1) / 2.0)), int(np.ceil(yc + (sy - 1) / 2.0)), number)


def saturated_boxes(data, catalog, settings):
    """One grown box per saturated star (its saturated pixels, bleed trails included),
    overlapping boxes merged, plus CluSex's perpendicular box for elongated ones."""
    from scipy import ndimage
    flagged = np.flatnonzero(saturated(catalog))
    if len(flagged) == 0 or settings.level is None:
        if len(flagged):
            log(f"{len(flagged)} object(s) flagged saturated, but no saturation level "
                "(give one, or SATURATE in the header): no saturated-star boxes")
        return []
    ny, nx = data.shape
    components, _ = ndimage.label(data >= settings.level)
    extents = ndimage.find_objects(components)
    ellipses = kron_ellipses(catalog)
    x0, y0 = ellipses.x - 1.0, ellipses.y - 1.0
    hx, hy = ellipses.bounds()
    numbers = np.asarray(catalog["NUMBER"]).astype(np.int64)
    boxes = []
    for i in flagged:
        half_x = max(hx[i], settings.min_size / 2)
        half_y = max(hy[i], settings.min_size / 2)
        window = (slice(max(int(y0[i] - half_y), 0), min(int(y0[i] + half_y) + 1, ny)),
                  slice(max(int(x0[i] - half_x), 0), min(int(x0[i] + half_x) + 1, nx)))
        found = np.unique(components[window])
        found = found[found > 0]
        if len(found) == 0:
            log(f"object {int(numbers[i])} is flagged saturated but has no pixel "
                f">= {settings.level:g} near it: no box")
            continue
        box = None
        for label in found:
            rows, cols = extents[label - 1]
            part = Box(cols.start + 1, cols.stop, rows.start + 1, rows.stop, int(numbers[i]))
            box = part if box is None else box.union(part)
        (xc, yc), (sx, sy) = box.centre, box.size
        boxes.append(box_from_centre(xc, yc, sx * settings.scale + settings.offset,
                                     sy * settings.scale + settings.offset, box.number))
    merged = merge_boxes([b.clipped(nx, ny) for b in boxes])
    result = []
    for box in merged:
        result.append(box)
        extra = perpendicular_box(box, data, settings.q, settings.method, nx, ny)
        if extra is not None:
            result.append(extra)
    return result


def merge_boxes(boxes):
    """Merge overlapping boxes until none overlap (the first box's NUMBER is kept)."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if boxes[i].overlaps(boxes[j]):
                    boxes[i] = boxes[i].union(boxes.pop(j))
                    merged = True
                    break
            if merged:
                break
    return boxes


def perpendicular_box(box, data, sat_q, method, nx, ny):
    """CluSex's second box across an elongated one (a bleed trail's star), or None."""
    sx, sy = box.size
    long_side, short_side = max(sx, sy), min(sx, sy)
    if method == 0 or short_side / long_side > sat_q:
        return None
    # the second box is short_side long along the long axis, sat_q x long_side across it
    width, height = (short_side, sat_q * sx) if sx >= sy else (sat_q * sy, short_side)
    xc, yc = box.centre
    second = box_from_centre(xc, yc, width, height, box.number).clipped(nx, ny)
    part = data[box.y0 - 1:box.y1, box.x0 - 1:box.x1]
    peak_index = np.argmax(part if method == 4 else np.abs(part))
    py, px = np.unravel_index(peak_index, part.shape)
    px, py = px + box.x0, py + box.y0
    if second.x0 < px < second.x1 and second.y0 < py < second.y1:
        return second
    if method == 1:
        (w, h) = second.size
        return box_from_centre(px, py, w, h, box.number).clipped(nx, ny)
    grown = Box(min(second.x0, px - PEAK_MARGIN), max(second.x1, px + PEAK_MARGIN),
                min(second.y0, py - PEAK_MARGIN), max(second.y1, py + PEAK_MARGIN), box.number)
    if method in (3, 4):
        (w, h) = grown.size
        grown = box_from_centre(px, py, w, h, box.number)
    return grown.clipped(nx, ny)


# --------------------------------------------------------------------------------------
# Regions, removal, main
# --------------------------------------------------------------------------------------

def paint_regions(mask, regions, value):
    """Set the pixels inside each ds9 shape (image coordinates, 1-based) to value."""
    ny, nx = mask.shape
    for region in regions:
        p = region.params
        if region.shape == "box":
            box = box_from_centre(p[0], p[1], p[2], p[3], 0)
            if p[4] % 180 == 0:
                mask[max(box.y0, 1) - 1:min(box.y1, ny), max(box.x0, 1) - 1:min(box.x1, nx)] \
                    = value
                continue
            c, s = np.cos(np.radians(p[4])), np.sin(np.radians(p[4]))
            corners = [(p[0] + u * c - v * s, p[1] + u * s + v * c)
                       for u, v in ((-p[2] / 2, -p[3] / 2), (p[2] / 2, -p[3] / 2),
                                    (p[2] / 2, p[3] / 2), (-p[2] / 2, p[3] / 2))]
            _paint_polygon(mask, corners, value)
        elif region.shape in ("ellipse", "circle"):
            a, b, angle = (p[2], p[3], p[4]) if region.shape == "ellipse" else (p[2], p[2], 0)
            hx, hy = ellipse_bounds(np.array([a]), np.array([b]), np.array([angle]))
            ys, xs = _window(p[0], p[1], hx[0], hy[0], nx, ny)
            inside = inside_ellipses(xs + 1.0, ys + 1.0, p[0], p[1], a, b, angle)
            mask[ys[inside], xs[inside]] = value
        elif region.shape == "polygon":
            _paint_polygon(mask, list(zip(p[0::2], p[1::2])), value)


def _window(xc, yc, hx, hy, nx, ny):
    """0-based pixel coordinates (ys, xs) of a box around a 1-based centre, clipped."""
    x = np.arange(max(int(np.floor(xc - hx)) - 1, 0), min(int(np.ceil(xc + hx)), nx))
    y = np.arange(max(int(np.floor(yc - hy)) - 1, 0), min(int(np.ceil(yc + hy)), ny))
    ys, xs = np.meshgrid(y, x, indexing="ij")
    return ys.ravel(), xs.ravel()


def _paint_polygon(mask, vertices, value):
    from matplotlib.path import Path  # matplotlib's 0.3 s of imports: only for polygons
    ny, nx = mask.shape
    xs, ys = zip(*vertices)
    yy, xx = _window((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2,
                     (max(xs) - min(xs)) / 2 + 1, (max(ys) - min(ys)) / 2 + 1, nx, ny)
    inside = Path(vertices).contains_points(np.column_stack([xx + 1.0, yy + 1.0]))
    mask[yy[inside], xx[inside]] = value


def numbers_to_remove(remove, remove_file, remove_at, mask):
    """The NUMBERs to set back to sky: a comma list, a one-column file, and the objects
    under 1-based X,Y positions of the mask."""
    numbers = set()
    text = remove.replace(";", ",").replace(" ", ",")
    for item in filter(None, text.split(",")):
        try:
            numbers.add(int(item))
        except ValueError:
            raise ToolError(f"--remove: '{item}' is not an object NUMBER") from None
    if remove_file:
        numbers |= _numbers_in_file(remove_file)
    for position in remove_at:
        try:
            x, y = (float(v) for v in position.split(","))
        except ValueError:
            raise ToolError(f"--remove-at '{position}': give X,Y in pixels") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ToolError(f"--remove-at '{position}': give X,Y in pixels")
        col, row = int(round(x)) - 1, int(round(y)) - 1
        if not (0 <= row < mask.shape[0] and 0 <= col < mask.shape[1]):
            raise ToolError(f"--remove-at {position} is outside the image")
        if mask[row, col] > 0:
            numbers.add(int(mask[row, col]))
    return numbers


def _numbers_in_file(path):
    numbers = set()
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for line_number, line in enumerate(handle, 1):
            item = line.split("#")[0].strip().split("\t")[0].split()
            if not item:
                continue
            try:
                value = float(item[0])
            except ValueError:
                value = np.nan
            if not np.isfinite(value) or value != round(value):
                raise ToolError(f"the list of objects to remove, line {line_number}: "
                                f"'{item[0]}' is not an object NUMBER")
            numbers.add(int(value))
    return numbers


def build_mask(catalog, image, scale, offset, boxes_settings, region_files):
    """The label mask, the saturated-star boxes, the value of boxes and regions, and how
    many ellipses were drawn."""
    catalog.require(MASK_COLUMNS)
    numbers = object_numbers(catalog)
    boxes = saturated_boxes(image.data, catalog, boxes_settings)
    in_boxes = _objects_in_boxes(catalog, boxes) | saturated(catalog)
    keep = ~in_boxes if boxes else np.ones(catalog.nrows, dtype=bool)
    ellipses = kron_ellipses(catalog, scale, offset).take(keep)
    mask = paint_ellipses(image.shape, numbers[keep], ellipses)
    region_value = int(numbers.max() if catalog.nrows else 0) + 1
    paint_regions(mask, [b.region() for b in boxes], region_value)
    for number, path in enumerate(region_files, 1):
        shapes = [r for r in read_regions(path, pixel_scale=pixel_scale_of(image),
                                          physical_offset=physical_offset(image.header))
                  if r.shape != "point"]
        paint_regions(mask, shapes, region_value)
        log(f"regions: {len(shapes)} shape(s) masked from region file {number}")
    return mask, boxes, region_value, int(keep.sum())


def _objects_in_boxes(catalog, boxes):
    inside = np.zeros(catalog.nrows, dtype=bool)
    x, y = catalog.floats("XPEAK_IMAGE"), catalog.floats("YPEAK_IMAGE")
    for box in boxes:
        inside |= (x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)
    return inside


def mask_header(image_header, scale, offset, region_value, binary):
    header = image_header.copy()
    for key in ("BUNIT", "MAGZP", "PHOTZP", "SATURATE", "BSCALE", "BZERO"):
        header.remove(key, ignore_missing=True)
    header["MASKSCL"] = (scale, "ellipse R = MASKSCL x KRON_RADIUS x A + MASKOFF")
    header["MASKOFF"] = (offset, "ellipse offset (pixels)")
    header["MASKSAT"] = (region_value, "value of saturated-star boxes and regions")
    header["COMMENT"] = "1 = masked (object, saturated star or region), 0 = sky" if binary \
        else "value = catalog NUMBER of the object; MASKSAT = saturated/region"
    return header


def main(argv=None):
    args = parse_args(argv)
    image = read_image_argument(args)
    catalog = read_catalog(args.catalog, "the catalog")
    level = args.satur_level
    if level is None:
        level, _ = header_number(image.header, ("SATURATE",))
    settings = SaturationBoxes(level, args.sat_scale, args.sat_offset, args.min_sat_size,
                               args.sat_q, args.sat_method)
    mask, boxes, region_value, drawn = build_mask(catalog, image, args.scale, args.offset,
                                                  settings, args.regions)
    removed = numbers_to_remove(args.remove, args.remove_file, args.remove_at, mask)
    if removed:
        mask[np.isin(mask, list(removed))] = 0
        log(f"removed object(s): {', '.join(str(n) for n in sorted(removed))}")
    flags = read_flag_map(args.flag_image, args.flag_hdu, image.shape)
    dq_value = region_value + 1
    if flags is not None:
        flagged = flagged_pixels(flags, args.flag_bits, args.flag_codes) & (mask == 0)
        mask[flagged] = dq_value
        log(f"flag image: {int(flagged.sum())} flagged sky pixel(s) masked with value "
            f"{dq_value} (MASKDQ)")
    header = mask_header(image.header, args.scale, args.offset, region_value, args.binary)
    if flags is not None:
        header["MASKDQ"] = (dq_value, "value of pixels of the flag image")
    values = (mask > 0).astype(np.uint8) if args.binary else mask.astype(np.int32)
    with Outputs() as out:
        if args.saturation_regions:
            write_regions(out.path(args.saturation_regions), [b.region_line() for b in boxes])
        write_fits_image(out.path(args.output), values, header)
    log(f"mask: {mask.shape[1]} x {mask.shape[0]} pixels, {drawn} ellipses, "
        f"{len(boxes)} saturated-star box(es), {int((mask > 0).sum())} pixels masked")


if __name__ == "__main__":
    run_cli(main)
