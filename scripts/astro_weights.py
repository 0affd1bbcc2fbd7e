"""Weight maps and data-quality (flag) maps as SExtractor uses them.

Weights (SExtractor's WEIGHT_TYPE, src/weight.c and src/back.c):
- map_var: a variance map; map_weight: an inverse variance up to a factor; both are
  rescaled so that they match the image's own noise: the factor is the median, over the
  background meshes, of the image's background RMS over the square root of the map's
  variance (SExtractor's WEIGHT_GAIN Y). map_rms: an RMS map, used as it is.
- Bad pixels: map_weight values at or below the weight threshold (default 0), map_var and
  map_rms values at or above it (default none), and any zero, negative or non-finite
  variance. They are left out of the background, the detection and the sums.

Flags (SExtractor's FLAG_IMAGE, FLAG_TYPE; src/flag.c): IMAFLAGS_ISO combines the flag
values of the pixels of each object's footprint (OR, AND, MIN, MAX or MOST of the non-zero
values) and NIMAFLAGS_ISO counts the pixels that set it.
"""

import numpy as np

from astro_common import ToolError

WEIGHT_TYPES = ("map_weight", "map_var", "map_rms")
FLAG_TYPES = ("or", "and", "min", "max", "most")


def bad_weight_pixels(values, kind, thresh):
    """True where a weight-map pixel is bad (see the module notes)."""
    values = np.asarray(values, dtype=np.float64)
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
    """(variance (float32, 0 at bad pixels), bad pixels, the rescaling factor sigfac) of a
    weight map of the given kind, for the image `data` (mask: pixels not to use)."""
    import sep
    bad = bad_weight_pixels(values, kind, thresh)
    if bad.all():
        raise ToolError(f"the weight map has no usable pixel: every value is bad for "
                        f"{kind.upper()} (zero, negative, NaN or beyond the threshold)")
    values = np.asarray(values, dtype=np.float64)
    if kind == "map_rms":
        variance = np.where(bad, 0.0, values) ** 2
        return variance.astype(np.float32), bad, 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(bad, 0.0, 1.0 / values if kind == "map_weight" else values)
    filled = np.where(bad, np.median(raw[~bad]), raw)
    skip = bad if mask is None else (bad | mask)
    science = sep.Background(np.ascontiguousarray(data), mask=skip, bw=back_size,
                             bh=back_size, fw=back_filtersize, fh=back_filtersize)
    noise = sep.Background(np.ascontiguousarray(filled, dtype=np.float32), mask=bad,
                           bw=back_size, bh=back_size, fw=back_filtersize, fh=back_filtersize)
    sigma = _mesh_values(science.rms(), back_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sigma / np.sqrt(_mesh_values(noise.back(), back_size))
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    sigfac = float(np.median(ratio)) if len(ratio) else 1.0
    return (raw * sigfac ** 2).astype(np.float32), bad, sigfac


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
    if image.shape != shape:
        raise ToolError(f"the flag image is {image.shape[1]} x {image.shape[0]} pixels but "
                        f"the image is {shape[1]} x {shape[0]}; they must have the same shape")
    data = image.data
    if image.invalid is not None or not np.all(data == np.round(data)) or (data < 0).any():
        raise ToolError("the flag image must hold whole, non-negative numbers (data-quality "
                        "codes or bits), like DECam's ood or the Legacy Surveys' maskbits")
    return data.astype(np.int64)
