"""The suite's one ellipse geometry: every mask, region, overlay, sky ring and join draws an
object's ellipse from here, so they can never disagree about it.

Pixel coordinates are 1-based (SExtractor's), angles in degrees counter-clockwise from +x.
An object's Kron ellipse (CluSex's) has the semi-major axis
    R = Scale x KRON_RADIUS x A_IMAGE + Offset, at least MIN_SEMI_MAJOR,
the axis ratio b/a = 1 - ELLIPTICITY (else B_IMAGE / A_IMAGE), clipped to
[MIN_AXIS_RATIO, 1], and the angle THETA_IMAGE; it is centred on the peak pixel
(XPEAK_IMAGE, YPEAK_IMAGE) as CluSex does, or on the barycentre (X_IMAGE, Y_IMAGE).
A row whose geometry is NaN or infinite is an error naming its line and column.
"""

from dataclasses import dataclass

import numpy as np

MIN_SEMI_MAJOR = 1.0     # px: CluSex's makemask clamp (an ellipse covers at least a pixel)
MIN_AXIS_RATIO = 0.005   # CluSex's clamp of b/a (a needle still has a width)
SATURATED_FLAG = 4       # SExtractor's FLAGS bit of an object with saturated pixels
KRON_COLUMNS = ("KRON_RADIUS", "A_IMAGE", "THETA_IMAGE")
PEAK_COLUMNS = ("XPEAK_IMAGE", "YPEAK_IMAGE")


@dataclass(frozen=True)
class Ellipses:
    """Many ellipses: 1-based centres, semi-axes (px) and angles (deg), one per object."""

    x: np.ndarray
    y: np.ndarray
    major: np.ndarray
    minor: np.ndarray
    theta: np.ndarray

    def __len__(self):
        return len(self.x)

    @property
    def ratio(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.major > 0, self.minor / self.major, 1.0)

    def bounds(self):
        """Half-widths (hx, hy) of the axis-aligned box around each ellipse."""
        return ellipse_bounds(self.major, self.minor, self.theta)

    def take(self, index):
        return Ellipses(self.x[index], self.y[index], self.major[index], self.minor[index],
                        self.theta[index])


def axis_ratio(catalog, what="the catalog"):
    """b/a of each object: 1 - ELLIPTICITY (CluSex's choice), else B_IMAGE / A_IMAGE,
    clipped to [MIN_AXIS_RATIO, 1]."""
    if "ELLIPTICITY" in catalog:
        ratio = 1.0 - catalog.floats("ELLIPTICITY", what)
    else:
        if "B_IMAGE" not in catalog:
            catalog.require(["ELLIPTICITY (or B_IMAGE)"], what)
        a, b = catalog.floats("A_IMAGE", what), catalog.floats("B_IMAGE", what)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(a > 0, b / np.where(a > 0, a, 1.0), 1.0)
    return np.clip(ratio, MIN_AXIS_RATIO, 1.0)


def kron_size(catalog, what="the catalog"):
    """KRON_RADIUS x A_IMAGE (px): an object's size as CluSex compares and scales it."""
    return catalog.floats("KRON_RADIUS", what) * catalog.floats("A_IMAGE", what)


def object_centres(catalog, centre="peak", what="the catalog"):
    """1-based centres: the peak pixel ('peak') or the barycentre ('barycentre', which
    falls back to the peak when a catalog has no X_IMAGE/Y_IMAGE)."""
    names = PEAK_COLUMNS
    if centre == "barycentre" and ("X_IMAGE" in catalog or "XPEAK_IMAGE" not in catalog):
        names = ("X_IMAGE", "Y_IMAGE")
    catalog.require(names, what)
    return catalog.floats(names[0], what), catalog.floats(names[1], what)


def kron_ellipses(catalog, scale=1.0, offset=0.0, centre="peak", what="the catalog"):
    """Each object's Kron ellipse, R = scale x KRON_RADIUS x A + offset (module notes)."""
    catalog.require(KRON_COLUMNS, what)
    x, y = object_centres(catalog, centre, what)
    major = np.maximum(scale * kron_size(catalog, what) + offset, MIN_SEMI_MAJOR)
    return Ellipses(x, y, major, major * axis_ratio(catalog, what),
                    catalog.floats("THETA_IMAGE", what))


def shape_ellipses(catalog, k=6.0, centre="barycentre", what="the catalog"):
    """k x (A_IMAGE, B_IMAGE): the isophotal shape, as SExtractor's check images draw it."""
    catalog.require(("A_IMAGE", "THETA_IMAGE"), what)
    x, y = object_centres(catalog, centre, what)
    major = k * catalog.floats("A_IMAGE", what)
    return Ellipses(x, y, major, major * axis_ratio(catalog, what),
                    catalog.floats("THETA_IMAGE", what))


def saturated(catalog):
    """True for each object whose FLAGS carry SExtractor's saturated bit."""
    if "FLAGS" not in catalog:
        return np.zeros(catalog.nrows, dtype=bool)
    flags = np.nan_to_num(np.asarray(catalog["FLAGS"], dtype=float)).astype(np.int64)
    return (flags & SATURATED_FLAG) > 0


# --------------------------------------------------------------------------------------
# Pixels and points
# --------------------------------------------------------------------------------------

def ellipse_bounds(major, minor, theta_deg):
    """Half-widths (hx, hy) of the axis-aligned box around each ellipse."""
    phi = np.radians(theta_deg)
    hx = np.sqrt((major * np.cos(phi)) ** 2 + (minor * np.sin(phi)) ** 2)
    hy = np.sqrt((major * np.sin(phi)) ** 2 + (minor * np.cos(phi)) ** 2)
    return hx, hy


def elliptical_radius(xs, ys, x0, y0, ratio, theta_deg):
    """Semi-major axis of the ellipse (axis ratio `ratio`, angle theta) through each point."""
    phi = np.radians(theta_deg)
    dx, dy = xs - x0, ys - y0
    u = dx * np.cos(phi) + dy * np.sin(phi)
    v = -dx * np.sin(phi) + dy * np.cos(phi)
    return np.sqrt(u ** 2 + (v / ratio) ** 2)


def inside_ellipses(px, py, cx, cy, major, minor, theta_deg):
    """Strict point-in-ellipse test, element by element (all arrays of one length).

    True where (u/major)^2 + (v/minor)^2 < 1, with (u, v) the point's offset from the
    centre rotated by -theta. Degenerate ellipses (an axis <= 0) contain nothing.
    """
    phi = np.radians(theta_deg)
    dx, dy = px - cx, py - cy
    u = dx * np.cos(phi) + dy * np.sin(phi)
    v = -dx * np.sin(phi) + dy * np.cos(phi)
    valid = (major > 0) & (minor > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (u / major) ** 2 + (v / minor) ** 2 < 1.0
    return valid & inside


def box_pixels(x_lo, x_hi, y_lo, y_hi, limit=20_000_000):
    """Every pixel of many boxes [x_lo, x_hi) x [y_lo, y_hi) at once, as (owner, x, y)
    arrays (owner = the box's index), in chunks of about `limit` pixels."""
    width = np.maximum(np.asarray(x_hi) - x_lo, 0)
    height = np.maximum(np.asarray(y_hi) - y_lo, 0)
    sizes = width * height
    ends = np.cumsum(sizes)
    start = 0
    while start < len(sizes):
        done = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, done + limit, side="right")), start + 1)
        boxes = np.arange(start, stop)
        counts = sizes[boxes]
        owner = np.repeat(boxes, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        yield owner, x_lo[owner] + within % width[owner], y_lo[owner] + within // width[owner]
        start = stop
