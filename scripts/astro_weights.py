"""Weight maps and data-quality (flag) maps as SExtractor uses them.

Weights (SExtractor's WEIGHT_TYPE, src/weight.c and src/back.c):
- map_var: a variance map; map_weight: an inverse variance up to a factor; both are
  rescaled so that they match the image's own noise: the factor is the median, over the
  background meshes, of the image's background sigma over the square root of the map's
  background variance, each mesh's level estimated as SExtractor's src/back.c does (a
  variance counted only where its image pixel survives the image's clipping). map_rms:
  an RMS map, used as it is.
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


# SExtractor's background-mesh estimator (src/back.c), used here only for the weight scaling
QUANTIF_NSIGMA, QUANTIF_NMAXLEVELS, QUANTIF_AMIN = 5, 4096, 4
BACK_MINGOODFRAC = 0.5
BACK_PEARSON = 2.5  # mode = 2.5 median - 1.5 mean
_LEVEL_STEP = np.sqrt(2 / np.pi) * QUANTIF_NSIGMA / QUANTIF_AMIN


def _mean_sigma(values):
    mean = values.mean()
    variance = np.mean(values * values) - mean * mean
    return mean, (np.sqrt(variance) if variance > 0 else 0.0)


def _two_sigma_cut(values):
    mean, sigma = _mean_sigma(values)
    return np.float32(mean - 2 * sigma), np.float32(mean + 2 * sigma)


def _quantisation(values):
    """(mean, levels, step, zero) of a mesh's histogram, from its clipped values."""
    mean, sigma = _mean_sigma(values)
    levels = min(int(_LEVEL_STEP * len(values) + 1), QUANTIF_NMAXLEVELS)
    step = np.float32(2 * QUANTIF_NSIGMA * sigma / levels if sigma > 0 else 1.0)
    return mean, levels, step, np.float32(mean - QUANTIF_NSIGMA * sigma)


def _bins(values, quantisation):
    """Histogram bins of float32 values, in float32 and truncated towards zero as C does;
    -1 or `levels` when outside."""
    _, levels, step, zero = quantisation
    index = np.trunc(values / step + (np.float32(0.499999) - zero / step))
    return np.clip(np.nan_to_num(index, nan=-1.0), -1, levels).astype(np.int64)


def _split_counts(counts):
    """Where SExtractor's median walk over a histogram stops: bins are taken from the low
    end while their sum is below the high end's, else from the high end. It stops after
    the first l bins, l the first bin whose cumulative count plus the one before it
    reaches the total (checked against the walk itself in the tests). Returns (l, the sum
    of the l low bins, the total)."""
    if not len(counts):
        return 0, 0, 0
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    before = cumulative - counts
    nlow = int(np.argmax(cumulative + before >= total))
    return nlow, int(before[nlow]), total


def histogram_mode(counts, quantisation):
    """(background, sigma) of one mesh from its histogram, as SExtractor's backguess():
    +-3 sigma clipping around the median until sigma settles, then the mode as
    2.5 median - 1.5 mean (the median alone when the two differ by 0.3 sigma or more)."""
    mean0, levels, step, zero = quantisation
    top = levels - 1
    lcut, hcut = 0, top
    sigma, previous = 10.0 * top, 1.0
    mean = median = mean0
    for _ in range(100):
        if not (sigma >= 0.1 and abs(sigma / previous - 1.0) > 1e-4):
            break
        previous = sigma
        part = counts[lcut:hcut + 1]
        index = np.arange(lcut, lcut + len(part), dtype=np.float64)
        nlow, low, total = _split_counts(part)
        below = lcut + nlow - 1
        if below >= 0:
            peak = max(counts[below], counts[below + 1] if below + 1 < levels else 0)
            median = below + 0.5 + ((total - 2.0 * low) / (2.0 * peak) if peak else 0.0)
        else:
            median = 0.0
        mean = sigma = 0.0
        if total:
            mean = float((part * index).sum() / total)
            sigma = float((part * index * index).sum() / total) - mean * mean
        sigma = np.sqrt(sigma) if sigma > 0 else 0.0
        lcut = _c_round(median - 3 * sigma) if median - 3 * sigma > 0 else 0
        hcut = _c_round(median + 3 * sigma) if median + 3 * sigma < top else top
    if sigma <= 0:
        return float(zero + mean * step), 0.0
    mode = BACK_PEARSON * median - (BACK_PEARSON - 1) * mean \
        if abs((mean - median) / sigma) < 0.3 else median
    return float(zero + mode * step), float(sigma * step)


def _c_round(value):
    return int(value + 0.5) if value > 0 else int(value - 0.5)


def mesh_levels(pixels, variances):
    """((image background, sigma), (variance background, sigma)) of one background mesh
    from its usable pixels (float32), as SExtractor computes them with a weight map: each
    clipped at 2 sigma, a variance counted only where its image pixel is kept; None for a
    mesh whose variances all fall outside their clip."""
    image = pixels.astype(np.float64)
    noise = variances.astype(np.float64)
    low, high = _two_sigma_cut(image)
    wlow, whigh = _two_sigma_cut(noise)
    kept = (image >= low) & (image <= high)
    noise_kept = kept & (noise >= wlow) & (noise <= whigh)
    if not noise_kept.any():
        return None
    image_q = _quantisation(image[kept])
    noise_q = _quantisation(noise[noise_kept])
    bins = _bins(pixels, image_q)
    inside = (bins >= 0) & (bins < image_q[1])
    image_counts = np.bincount(bins[inside], minlength=image_q[1])
    noise_bins = _bins(variances[inside], noise_q)
    noise_bins = noise_bins[(noise_bins >= 0) & (noise_bins < noise_q[1])]
    noise_counts = np.bincount(noise_bins, minlength=noise_q[1])
    return histogram_mode(image_counts, image_q), histogram_mode(noise_counts, noise_q)


def filter_meshes(back, sigma, size):
    """SExtractor's filterback(): meshes without a value take the mean of the nearest
    valid ones, then a median filter of `size` meshes, the window shrunk symmetrically at
    the edges."""
    back, sigma = back.copy(), sigma.copy()
    valid = np.isfinite(back)
    if not valid.any():
        return np.zeros_like(back), np.ones_like(sigma)
    vy, vx = np.nonzero(valid)
    for y, x in zip(*np.nonzero(~valid)):
        d2 = (vy - y) ** 2 + (vx - x) ** 2
        nearest = d2 == d2.min()
        back[y, x] = back[vy[nearest], vx[nearest]].mean()
        sigma[y, x] = sigma[vy[nearest], vx[nearest]].mean()
    ny, nx = back.shape
    half = size // 2
    out_back, out_sigma = back.copy(), sigma.copy()
    for y in range(ny):
        for x in range(nx):
            hy, hx = min(half, y, ny - 1 - y), min(half, x, nx - 1 - x)
            window = (slice(y - hy, y + hy + 1), slice(x - hx, x + hx + 1))
            out_back[y, x] = np.median(back[window])
            out_sigma[y, x] = np.median(sigma[window])
    return out_back, out_sigma


def mesh_maps(data, variance, usable, box, filtersize):
    """((image background, image sigma), (variance background, variance sigma)) per
    background mesh, median-filtered, as SExtractor's makeback() with a weight map."""
    ny, nx = data.shape
    shape = ((ny - 1) // box + 1, (nx - 1) // box + 1)
    levels = np.full((4,) + shape, np.nan)
    for j in range(shape[0]):
        for i in range(shape[1]):
            mesh = (slice(j * box, (j + 1) * box), slice(i * box, (i + 1) * box))
            good = usable[mesh]
            if good.sum() < BACK_MINGOODFRAC * good.size:
                continue
            found = mesh_levels(data[mesh][good].astype(np.float32, copy=False),
                                variance[mesh][good])
            if found:
                levels[:, j, i] = found[0] + found[1]
    return (filter_meshes(levels[0], levels[1], filtersize),
            filter_meshes(levels[2], levels[3], filtersize))


def weight_scale(data, variance, usable, box, filtersize):
    """SExtractor's global weight scaling factor (src/back.c): the median over the
    background meshes of the image's background sigma over the square root of the
    variance map's background; 1 when no mesh gives one."""
    (_, image_sigma), (noise_back, _) = mesh_maps(data, variance, usable, box, filtersize)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = image_sigma / np.sqrt(noise_back)
    ratio = ratio[(noise_back > 0) & (ratio > 0)]
    return float(np.median(ratio)) if len(ratio) else 1.0


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
    sigfac = weight_scale(data, raw, ~skip, back_size, back_filtersize)
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
