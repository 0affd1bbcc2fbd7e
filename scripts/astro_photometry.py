"""Photometry shared by the tools that measure fluxes (sep_extract, forced_photometry):
sep calls that grow sep's limits on demand, the background, zero points and magnitudes,
with SExtractor's conventions (MAG = ZP - 2.5 log10 FLUX; 99 for a non-positive flux)."""

import numpy as np

from astro_common import log, ToolError
from astro_ellipses import ellipse_bounds
from astro_images import header_number

ZEROPOINT_KEYS = ("MAGZP", "PHOTZP", "MAGZPT")
MAG_UNDEFINED = 99.0       # SExtractor's magnitude for a non-positive flux
MAGERR_FACTOR = 2.5 / np.log(10.0)   # 1.0857: magnitude error per relative flux error
KRON_MEASURE_RADIUS = 6.0  # SExtractor measures the first moment within 6 isophotal radii


def run_sep(call, what):
    """Call sep, raising its pixel-stack or deblending limits when a big image needs it."""
    import sep
    for _ in range(6):
        try:
            return call()
        except Exception as err:
            text = str(err)
            if "pixel buffer full" in text or "pixstack" in text:
                size = sep.get_extract_pixstack() * 4
                sep.set_extract_pixstack(size)
                log(f"{what}: raised sep's pixel stack to {size} pixels")
            elif "deblending" in text and "overflow" in text:
                limit = sep.get_sub_object_limit() * 4
                sep.set_sub_object_limit(limit)
                log(f"{what}: raised sep's deblending sub-object limit to {limit}")
            else:
                raise ToolError(f"sep could not {what}: {text}") from None
    raise ToolError(f"sep could not {what}: the image needs more memory than allowed")


def estimate_background(data, mask, back_size, back_filtersize):
    import sep
    return run_sep(lambda: sep.Background(data, mask=mask, bw=back_size, bh=back_size,
                                          fw=back_filtersize, fh=back_filtersize),
                   "estimate the background")


def weight_gain_map(data_sub, variance, global_rms, gain):
    """SExtractor's WEIGHT_GAIN (on by default with a weight map, src/photom.c): the weight
    map is also a gain map, so a pixel's Poisson variance is its positive flux / GAIN times
    its variance over the image's global background variance. Returns the map whose
    aperture sums are that Poisson term, or None (no weight map, no gain: then the plain
    total flux / GAIN is used, as SExtractor does without weights)."""
    if variance is None or not gain or not global_rms > 0:
        return None
    out = np.maximum(data_sub, 0).astype(np.float32)
    out *= variance
    out *= np.float32(1.0 / (gain * global_rms ** 2))
    return out


def sums_with_errors(sum_function, data_sub, geometry, err, gain, poisson_map, **options):
    """(flux, error, flags) of one of sep's aperture sums (sum_ellipse, sum_circle) over
    every object: the Poisson term pixel by pixel from poisson_map (weight_gain_map) when
    there is one, else sep's total flux / gain."""
    flux, flux_err, flags = sum_function(
        data_sub, *geometry, err=err, gain=None if poisson_map is not None else gain,
        **options)
    if poisson_map is not None:
        poisson = sum_function(poisson_map, *geometry, **options)[0]
        flux_err = np.sqrt(np.square(flux_err) + np.maximum(poisson, 0))
    return flux, flux_err, flags


def magnitudes(flux, zeropoint):
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = zeropoint - 2.5 * np.log10(flux)
    return np.where(flux > 0, mag, MAG_UNDEFINED)


def magnitude_errors(flux, flux_err):
    """SExtractor's MAGERR: 1.0857 x FLUXERR / FLUX (99 for a non-positive flux)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        err = MAGERR_FACTOR * flux_err / flux
    return np.where(flux > 0, err, MAG_UNDEFINED)


def choose_zeropoint(given, header):
    """(zero point, where it came from): the option, else MAGZP/PHOTZP/MAGZPT, else 0."""
    if given is not None:
        return given, "--zeropoint"
    value, key = header_number(header, ZEROPOINT_KEYS)
    if value is not None:
        return value, f"header {key}"
    return 0.0, "default; no MAGZP/PHOTZP in the header"


MASK_TYPES = ("correct", "blank", "none")  # SExtractor's MASK_TYPE (default CORRECT)


def _box_edges(x, y, a, b, theta, r):
    """The box SExtractor scans for each ellipse of semi-axes r*a, r*b (src/photom.c):
    [RINT(x - hx), RINT(x + hx) + 1) and likewise in y, RINT(v) being floor(v + 0.5);
    not clipped to the image."""
    half_x, half_y = ellipse_bounds(r * a, r * b, np.degrees(theta))
    return (np.floor(x - half_x + 0.5), np.floor(x + half_x + 0.5) + 1,
            np.floor(y - half_y + 0.5), np.floor(y + half_y + 0.5) + 1)


def ellipse_boxes(x, y, a, b, theta, r, shape):
    """Pixel bounds [x0, x1) and [y0, y1) of each ellipse of semi-axes r*a, r*b."""
    ny, nx = shape
    x0, x1, y0, y1 = _box_edges(x, y, a, b, theta, r)
    return tuple(np.clip(edge, 0, size).astype(np.int64)
                 for edge, size in ((x0, nx), (x1, nx), (y0, ny), (y1, ny)))


def apertures_beyond_image(x, y, a, b, theta, r, shape):
    """SExtractor's OBJ_APERT_PB test (src/photom.c): the box it scans for an ellipse of
    semi-axes r a, r b reaches beyond the image."""
    ny, nx = shape
    x0, x1, y0, y1 = _box_edges(x, y, a, b, theta, r)
    return (x0 < 0) | (x1 > nx) | (y0 < 0) | (y1 > ny)


def circles_beyond_image(x, y, r, shape):
    """SExtractor's OBJ_APERT_PB test of a circle of radius r (FLUX_APER's apertures,
    src/photom.c; FLUX_RADIUS's growth curve): its box [(int)(x - r + 0.499999),
    (int)(x + r + 1.499999)) (C's truncation) leaves the image."""
    ny, nx = shape
    return ((np.trunc(x - r + 0.499999) < 0) | (np.trunc(x + r + 1.499999) > nx)
            | (np.trunc(y - r + 0.499999) < 0) | (np.trunc(y + r + 1.499999) > ny))


def growth_curve_beyond_image(x, y, a, shape):
    """SExtractor's OBJ_APERT_PB test of the growth curve FLUX_RADIUS is read from
    (src/growth.c): the circle of radius 6 A + 1.5 around the object leaves the image."""
    return circles_beyond_image(x, y, 6.0 * np.asarray(a, dtype=np.float64) + 1.5, shape)


def _box_counts(table, x0, x1, y0, y1):
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def _summed_area(values, band=256):
    """Counts of True pixels in every [0, y) x [0, x) (int32: images below 2**31 pixels),
    a band of rows at a time: no temporary of the table's size."""
    ny, nx = values.shape
    table = np.zeros((ny + 1, nx + 1), dtype=np.int32)
    for start in range(0, ny, band):
        part = np.cumsum(values[start:start + band], axis=1, dtype=np.int32)
        np.cumsum(part, axis=0, out=part)
        part += table[start, 1:]          # everything above the band
        table[start + 1:start + 1 + len(part), 1:] = part
    return table


def isophotal_corrected_fluxes(flux, npix, thresh):
    """SExtractor's FLUX_ISOCOR (src/photom.c): FLUX_ISO corrected for the wings of a
    Gaussian profile below the isophote, flux / (1 - 0.196099 t - 0.751208 t^2) with
    t = npix x threshold / flux clipped to [0, 1] (0 for a non-positive flux); npix: the
    pixels of the detection, threshold: the detection threshold at the object."""
    flux = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(flux > 0, np.asarray(npix) * np.asarray(thresh) / flux, 0.0)
    t = np.clip(np.nan_to_num(t), 0.0, 1.0)
    return flux / (1.0 - 0.196099 * t - 0.751208 * t * t)


CROWD_THRESHOLD = 0.1  # SExtractor's OBJ_CROWDED: blanked pixels over this fraction


def crowded_objects(blanked, segmap, x, y, a, b, theta, radii):
    """SExtractor's OBJ_CROWDED (FLAGS bit 1, src/photom.c): more than 10 % of the pixels of
    an ellipse of semi-axes r a, r b are blanked, for any r of radii (SExtractor checks the
    ellipse its Kron radius is measured in, then the AUTO aperture). blanked: True on
    every masked or bad pixel and (MASK_TYPE CORRECT, BLANK) every pixel of an object or of
    a detection; an object's own pixels are taken back out through segmap. Counted with
    sep's pixel-centre test: sums of the blanked image, and the pixel count from the sum's
    error with a unit error per pixel; the own pixels in one pass over the footprints."""
    import sep
    count = len(x)
    crowded = np.zeros(count, dtype=bool)
    if blanked is None or count == 0 or not blanked.any():
        return crowded
    radii = [np.broadcast_to(np.asarray(r, dtype=np.float64), (count,)) for r in radii]
    own = own_pixels_within(blanked, segmap, x, y, a, b, theta, radii)
    for r, own_inside in zip(radii, own):
        # sep sums the boolean image as it is (no float copy)
        blank_sum, root_area, _ = sep.sum_ellipse(blanked, x, y, a, b, theta, r, err=1.0,
                                                  subpix=1)
        crowded |= blank_sum - own_inside > CROWD_THRESHOLD * np.rint(np.square(root_area))
    return crowded


def own_pixels_within(blanked, segmap, x, y, a, b, theta, radii, band=256):
    """For each radius, the blanked pixels of each object's own footprint whose centre is
    inside its ellipse of semi-axes r a, r b (sep's test), counted a band of rows at a
    time: the temporaries follow a band's object pixels, not the image's."""
    import sep
    count, width = len(x), segmap.shape[1]
    cxx, cyy, cxy = sep.ellipse_coeffs(a, b, theta)
    own = [np.zeros(count, dtype=np.int64) for _ in radii]
    for start in range(0, segmap.shape[0], band):
        labels = segmap[start:start + band].ravel()
        index = np.flatnonzero(blanked[start:start + band].ravel() & (labels > 0))
        owner = labels[index].astype(np.int64) - 1
        py, px = np.divmod(index, width)
        dx, dy = px - x[owner], py + start - y[owner]
        distance = cxx[owner] * dx * dx + cyy[owner] * dy * dy + cxy[owner] * dx * dy
        for total, r in zip(own, radii):
            total += np.bincount(owner[distance < r[owner] ** 2], minlength=count)
    return own


def label_counts(segmap, count, band=256):
    """The pixels of each label 0 ... count of a segmentation map, counted a band of rows
    at a time (one bincount would first copy the whole map to 64-bit integers: twice the
    bytes of a float32 image)."""
    total = np.zeros(count + 1, dtype=np.int64)
    for start in range(0, segmap.shape[0], band):
        total += np.bincount(segmap[start:start + band].ravel(), minlength=count + 1)[:count + 1]
    return total


def masked_pixel_corrections(data_sub, noise, poisson_map, segmap, bad, ellipses,
                             mask_type, others=None, own_boxes=None):
    """(flux, variance, Poisson) to add, per object, to whole-pixel sums over its ellipse
    made with nothing masked, so that they become SExtractor's with MASK_TYPE
    (src/photom.c): a pixel of another object (CORRECT, BLANK) or a bad pixel is replaced
    by its mirror image through the object's centre when that one is usable (CORRECT),
    else it counts as 0 with no variance. ellipses: (x, y, a, b, theta, r) 0-based;
    noise: a weight map's RMS, or a number (no weight map: as in SExtractor every pixel of
    the ellipse then keeps the background variance); others: pixels of detections that are
    not objects, blanked too; own_boxes: each object's (xmin, xmax, ymin, ymax). Only the
    objects whose ellipse holds such pixels cost work: each the pixels of its box."""
    x, y, a, b, theta, r = ellipses
    count = len(x)
    out = np.zeros((3, count))
    blanked = None
    if mask_type != "none":
        blanked = segmap > 0
        if others is not None:
            blanked |= others
    if blanked is None and bad is None:
        return out
    x0, x1, y0, y1 = ellipse_boxes(x, y, a, b, theta, r, segmap.shape)
    candidates = np.zeros(count, dtype=bool)
    if bad is not None and bad.any():
        candidates |= _box_counts(_summed_area(bad), x0, x1, y0, y1) > 0
    else:
        bad = None
    if blanked is not None:
        own_area = label_counts(segmap, count)
        # more labelled pixels in the box than the object has: a neighbour is there
        candidates |= _box_counts(_summed_area(blanked), x0, x1, y0, y1) > own_area[1:]
        if own_boxes is not None:  # an isophote reaching out of the box hides one
            xmin, xmax, ymin, ymax = own_boxes
            candidates |= (xmin < x0) | (xmax >= x1) | (ymin < y0) | (ymax >= y1)
    import sep
    cxx, cyy, cxy = sep.ellipse_coeffs(a, b, theta)
    ny, nx = segmap.shape
    for i in np.flatnonzero(candidates):
        rows, cols = np.mgrid[y0[i]:y1[i], x0[i]:x1[i]]
        dx, dy = cols - x[i], rows - y[i]
        # sep's own pixel-centre test (subpix 1), so that the corrections meet its sums
        inside = cxx[i] * dx * dx + cyy[i] * dy * dy + cxy[i] * dx * dy < r[i] ** 2
        label = segmap[rows, cols]
        replaced = np.zeros(inside.shape, dtype=bool) if bad is None else bad[rows, cols]
        if blanked is not None:
            replaced |= blanked[rows, cols] & (label != i + 1)
        replaced &= inside
        if not replaced.any():
            continue
        py, px = rows[replaced], cols[replaced]
        out[0, i] -= data_sub[py, px].sum()
        out[1, i] -= _variance_at(noise, py, px)
        if poisson_map is not None:
            out[2, i] -= poisson_map[py, px].sum()
        if mask_type != "correct":
            continue
        # SExtractor's mirror pixel: (int)(2 mx + 0.49999 - x), likewise in y
        mx = (2 * x[i] + 0.49999 - px).astype(np.int64)
        my = (2 * y[i] + 0.49999 - py).astype(np.int64)
        usable = (mx >= 0) & (mx < nx) & (my >= 0) & (my < ny)
        mx, my = mx[usable], my[usable]
        usable = ~blanked[my, mx] | (segmap[my, mx] == i + 1)
        if bad is not None:
            usable &= ~bad[my, mx]
        mx, my = mx[usable], my[usable]
        out[0, i] += data_sub[my, mx].sum()
        out[1, i] += _variance_at(noise, my, mx)
        if poisson_map is not None:
            out[2, i] += poisson_map[my, mx].sum()
    return out


def _variance_at(noise, rows, cols):
    """The variance summed over some pixels; 0 for a single background noise."""
    if noise is None or np.ndim(noise) == 0:
        return 0.0
    return np.square(noise[rows, cols], dtype=np.float64).sum()
