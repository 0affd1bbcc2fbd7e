"""Weight maps and data-quality (flag) maps as SExtractor uses them.

Weights (SExtractor's WEIGHT_TYPE, src/weight.c and src/back.c):
- map_var: a variance map; map_weight: an inverse variance up to a factor; both are
  rescaled so that they match the image's own noise: the factor is the median, over the
  background meshes, of the image's background RMS over the square root of the map's
  variance (SExtractor's WEIGHT_GAIN Y). map_rms: an RMS map, used as it is.
- Bad pixels: map_weight values at or below the weight threshold (default 0), map_var and
  map_rms values at or above it (default none), and any zero, negative or non-finite
  variance. They are left out of the background, the detection and the sums.

Interpolation (SExtractor's INTERP_TYPE ALL, src/interpolate.c): scanning each row from the
left, a bad pixel takes the value of the last good pixel on its left, for at most
INTERP_MAXXLAG pixels after it; further on, the value of the pixel below it, for at most
INTERP_MAXYLAG bad pixels above the last good one of its column; else it stays bad. The
image and its variance are filled alike, so a saturated star whose core and bleed trail
have zero weight is detected as one object instead of several pieces.

Flags (SExtractor's FLAG_IMAGE, FLAG_TYPE; src/flag.c): IMAFLAGS_ISO combines the flag
values of the pixels of each object's footprint (OR, AND, MIN, MAX or MOST of the non-zero
values) and NIMAFLAGS_ISO counts the pixels that set it.
"""

import numpy as np

from astro_common import log, ToolError
from astro_images import named_image_hdu, read_image, require_same_shape

WEIGHT_TYPES = ("map_weight", "map_var", "map_rms")
FLAG_TYPES = ("or", "and", "min", "max", "most")
# HDU names that hold a weight (inverse variance) or a data-quality plane in survey files:
# Legacy Surveys cutouts (INVVAR, MASKBITS), DES coadds (WGT, MSK), HST drizzle (WHT) ...
WEIGHT_HDU_NAMES = ("INVVAR", "IVAR", "WGT", "WEIGHT", "WHT")
FLAG_HDU_NAMES = ("MASKBITS", "MSK", "MASK", "DQ", "BPM", "FLAGS")
INTERP_MAXLAG = 16       # SExtractor's INTERP_MAXXLAG and INTERP_MAXYLAG defaults
FLAGS_WEIGHT_OVERLAP = 1  # a bad-weight pixel inside the isophotal footprint
FLAGS_WEIGHT_TOUCH = 2    # a bad-weight pixel next to it


def bad_weight_pixels(values, kind, thresh):
    """True where a weight-map pixel is bad (see the module notes)."""
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    with np.errstate(invalid="ignore"):
        if kind == "map_weight":
            bad |= values <= (0.0 if thresh is None else thresh)
        else:
            bad |= values <= 0
            if thresh is not None:
                bad |= values >= thresh
    return bad


def _mesh_values(map_2d, box):
    """A map sampled at the centres of its background meshes."""
    ny, nx = map_2d.shape
    ys = np.minimum(np.arange(box // 2, ny, box), ny - 1)
    xs = np.minimum(np.arange(box // 2, nx, box), nx - 1)
    return map_2d[np.ix_(ys, xs)].ravel()


def variance_map(values, kind, thresh, data, mask, back_size, back_filtersize):
    """(variance (float32, 0 at bad pixels), bad pixels, the rescaling factor sigfac, the
    image's sep.Background without the masked and bad pixels) of a weight map of the given
    kind, for the image `data` (mask: pixels not to use). Float32 throughout: the memory
    stays a few times the image's."""
    import sep
    bad = bad_weight_pixels(values, kind, thresh)
    if bad.all():
        raise ToolError(f"the weight map has no usable pixel: every value is bad for "
                        f"{kind.upper()} (zero, negative, NaN or beyond the threshold)")
    values = np.asarray(values, dtype=np.float32)
    skip = bad if mask is None else (bad | mask)
    science = sep.Background(np.ascontiguousarray(data), mask=skip, bw=back_size,
                             bh=back_size, fw=back_filtersize, fh=back_filtersize)
    raw = np.zeros(values.shape, dtype=np.float32)
    good = ~bad
    if kind == "map_rms":
        np.square(values, out=raw, where=good)
        return raw, bad, 1.0, science
    if kind == "map_weight":
        np.divide(np.float32(1.0), values, out=raw, where=good)
    else:
        np.copyto(raw, values, where=good)
    filled = raw.copy()
    filled[bad] = np.median(raw[good])
    noise = sep.Background(filled, mask=bad, bw=back_size, bh=back_size, fw=back_filtersize,
                           fh=back_filtersize)
    del filled
    sigma = _mesh_values(science.rms(), back_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sigma / np.sqrt(_mesh_values(noise.back(), back_size))
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    sigfac = float(np.median(ratio)) if len(ratio) else 1.0
    raw *= np.float32(sigfac ** 2)
    return raw, bad, sigfac, science


def filtered(values, kernel):
    """values correlated with a kernel, zero beyond the edges (SExtractor's convolve());
    a separable kernel (SExtractor's default 1 2 1) as two 1-D passes, in float32."""
    from scipy import ndimage
    kernel = np.asarray(kernel, dtype=np.float64)
    u, s, vt = np.linalg.svd(kernel)
    if s[0] > 0 and (len(s) < 2 or s[1] <= 1e-12 * s[0]):
        column, row = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
        out = ndimage.correlate1d(values, row.astype(np.float32), axis=1, mode="constant")
        return ndimage.correlate1d(out, column.astype(np.float32), axis=0, mode="constant",
                                   output=out)
    return ndimage.correlate(values, kernel.astype(np.float32), mode="constant")


def interpolate_bad_pixels(arrays, bad, xlag=INTERP_MAXLAG, ylag=INTERP_MAXLAG):
    """SExtractor's INTERP_TYPE ALL (see the module notes) of each array of `arrays` (the
    image and its variance) over the bad pixels; returns (filled copies, still bad).
    Vectorised: only the rows and columns that hold bad pixels are worked on."""
    filled = [np.array(a, copy=True) for a in arrays]
    still_bad = bad.copy()
    rows = np.flatnonzero(bad.any(axis=1))
    if not len(rows):
        return filled, still_bad
    nx = bad.shape[1]
    # along x: the last good pixel on the left, within xlag
    part = bad[rows]
    column = np.arange(nx, dtype=np.int32)
    left = np.where(part, -1, column[None, :]).astype(np.int32)
    np.maximum.accumulate(left, axis=1, out=left)
    xfill = part & (left >= 0) & (column[None, :] - left <= xlag)
    fill_rows, fill_cols = np.nonzero(xfill)
    for a in filled:
        a[rows[fill_rows], fill_cols] = a[rows[fill_rows], left[fill_rows, fill_cols]]
    still_bad[rows[fill_rows], fill_cols] = False
    del left, xfill, part
    # along y: the pixel below (itself filled along x, or good), while the column's count
    # of such pixels since its last good one is at most ylag
    cols = np.flatnonzero(still_bad.any(axis=0))
    if not len(cols):
        return filled, still_bad
    ybad = still_bad[:, cols]
    good = ~bad[:, cols]
    row = np.arange(bad.shape[0], dtype=np.int32)[:, None]
    below = np.where(ybad, -1, row).astype(np.int32)
    np.maximum.accumulate(below, axis=0, out=below)
    last_good = np.where(good, row, -1).astype(np.int32)
    np.maximum.accumulate(last_good, axis=0, out=last_good)
    count = np.cumsum(ybad, axis=0, dtype=np.int32)
    since = count - np.take_along_axis(count, np.maximum(last_good, 0), axis=0)
    yfill = ybad & (last_good >= 0) & (below >= 0) & (since <= ylag)
    fill_rows, fill_cols = np.nonzero(yfill)
    for a in filled:
        a[fill_rows, cols[fill_cols]] = a[below[fill_rows, fill_cols], cols[fill_cols]]
    still_bad[fill_rows, cols[fill_cols]] = False
    return filled, still_bad


def weight_flags(segmap, bad, count, kernel_shape=(1, 1)):
    """SExtractor's FLAGS_WEIGHT of objects 1..count (src/scan.c): 1 when a pixel of the
    isophotal footprint has a bad weight; 2 when the detection's filtered variance is bad
    at a footprint pixel or one of its 8 neighbours, i.e. a bad pixel lies within the
    filter kernel's reach (kernel_shape) plus one pixel of the footprint."""
    from scipy import ndimage
    flags = np.zeros(count, dtype=np.int64)
    if count == 0 or not bad.any():
        return flags
    inside = np.unique(segmap[bad & (segmap > 0)])
    flags[inside - 1] |= FLAGS_WEIGHT_OVERLAP
    reach = ndimage.binary_dilation(bad, structure=np.ones(kernel_shape, dtype=bool))
    near = ndimage.binary_dilation(reach, structure=np.ones((3, 3), dtype=bool))
    touched = np.unique(segmap[near & (segmap > 0)])
    flags[touched - 1] |= FLAGS_WEIGHT_TOUCH
    return flags


def combine_flags(flags, labels, index, count, kind):
    """(IMAFLAGS_ISO, NIMAFLAGS_ISO) of objects 1..count: flags is the flag map, labels
    and index the footprint pixels (astro_stellarity.footprint_pixels)."""
    values = np.asarray(flags).ravel()[index].astype(np.int64)
    set_ = values != 0
    owner, values = labels[set_] - 1, values[set_]
    combined = np.zeros(count, dtype=np.int64)
    counted = np.bincount(owner, minlength=count)
    if kind == "or":
        np.bitwise_or.at(combined, owner, values)
    elif kind == "and":  # of the non-zero values (SExtractor 2.25's AND is always 0)
        combined[:] = -1
        np.bitwise_and.at(combined, owner, values)
        combined[counted == 0] = 0
    elif kind in ("min", "max"):
        extreme = np.full(count, np.iinfo(np.int64).max if kind == "min" else 0)
        (np.minimum if kind == "min" else np.maximum).at(extreme, owner, values)
        combined = np.where(counted > 0, extreme, 0)
        counted = np.bincount(owner[values == combined[owner]], minlength=count)
    elif kind == "most":  # the most frequent non-zero value (ties: the smallest)
        pairs, frequency = np.unique(np.column_stack([owner, values]), axis=0,
                                     return_counts=True)
        order = np.lexsort((pairs[:, 1], -frequency, pairs[:, 0]))
        first = order[np.r_[True, pairs[order[1:], 0] != pairs[order[:-1], 0]]] \
            if len(order) else order
        counted = np.zeros(count, dtype=np.int64)
        combined[pairs[first, 0]] = pairs[first, 1]
        counted[pairs[first, 0]] = frequency[first]
    return combined, counted


def check_flag_image(image, shape):
    """A flag map must be the image's shape and hold whole numbers."""
    require_same_shape(image, shape, "flag image")
    data = image.data
    if image.invalid is not None or not np.all(data == np.round(data)) or (data < 0).any():
        raise ToolError("the flag image must hold whole, non-negative numbers (data-quality "
                        "codes or bits), like DECam's ood or the Legacy Surveys' maskbits")
    return data.astype(np.int64)


def choose_hdu(path, hdu, names, what):
    """(HDU, found): the HDU option as given, or for 'auto' the first HDU of the file named
    one of `names` (EXTNAME or IMAGETYP), (None, False) when there is none (logged)."""
    if hdu != "auto":
        return hdu, True
    index, name = named_image_hdu(path, names, what)
    if index is None:
        import os
        log(f"no {what} HDU ({', '.join(names)}) in {os.path.basename(path)}: no {what}")
        return None, False
    log(f"{what}: HDU {index} ({name}) of the file")
    return index, True


def read_flag_map(path, hdu, shape, what="flag image"):
    """The integer flag map of a file (HDU by number, name or 'auto'), or None."""
    if not path:
        return None
    hdu, found = choose_hdu(path, hdu, FLAG_HDU_NAMES, what)
    if not found:
        return None
    return check_flag_image(read_image(path, what, hdu=hdu), shape)


def flagged_pixels(flags, bits=None, codes=None):
    """Pixels a flag map marks: any of the bit mask `bits` set (MASKBITS-like maps), or a
    value among `codes` (code-valued maps such as DECam's ood), else any non-zero value."""
    if bits:
        return (flags & int(bits)) != 0
    if codes:
        return np.isin(flags, list(codes))
    return flags != 0


def bad_weight_mask(path, hdu, shape, kind="map_weight", thresh=None, what="weight map"):
    """Pixels a weight map says are bad (see bad_weight_pixels), or None without one."""
    if not path:
        return None
    hdu, found = choose_hdu(path, hdu, WEIGHT_HDU_NAMES, what)
    if not found:
        return None
    weight = read_image(path, what, hdu=hdu)
    require_same_shape(weight, shape, what)
    raw = weight.data if weight.invalid is None else np.where(weight.invalid, np.nan,
                                                              weight.data)
    return bad_weight_pixels(raw, kind, thresh)
