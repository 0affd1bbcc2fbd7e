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


def _masked_mean_sigma(values, where):
    """Per row: the mean and sigma (sqrt of E[x^2] - mean^2, 0 if not positive) of the
    values where `where`, in float64; (mean, sigma, count)."""
    count = where.sum(axis=1)
    total = np.maximum(count, 1)
    mean = np.sum(values, axis=1, where=where, dtype=np.float64) / total
    square = np.sum(np.square(values, dtype=np.float64), axis=1, where=where) / total
    variance = square - mean * mean
    return mean, np.sqrt(np.where(variance > 0, variance, 0.0)), count


def _quantisations(values, where):
    """Per row (mesh): (mean, levels, step, zero) of its histogram, from its clipped
    values: SExtractor's QUANTIF_NSIGMA 5 sigma either side in up to 4096 levels."""
    mean, sigma, count = _masked_mean_sigma(values, where)
    levels = np.minimum((_LEVEL_STEP * count + 1).astype(np.int64), QUANTIF_NMAXLEVELS)
    step = np.where(sigma > 0, 2 * QUANTIF_NSIGMA * sigma / levels, 1.0).astype(np.float32)
    return mean, levels, step, (mean - QUANTIF_NSIGMA * sigma).astype(np.float32)


def _bins(values, step, zero, levels):
    """Histogram bins of float32 values per row, in float32 and truncated towards zero as
    C does; -1 or `levels` when outside."""
    offset = np.float32(0.499999) - zero / step
    index = np.trunc(values / step[:, None] + offset[:, None])
    index = np.nan_to_num(index, nan=-1.0)
    return np.clip(index, -1, levels[:, None]).astype(np.int64)


def _row_of_meshes(values, box, fill):
    """One row of background meshes as (meshes, pixels), the last mesh padded with fill."""
    height, width = values.shape
    count = (width - 1) // box + 1
    padded = np.full((height, count * box), fill, dtype=values.dtype)
    padded[:, :width] = values
    return padded.reshape(height, count, box).transpose(1, 0, 2).reshape(count, -1)


def _histograms(bins, valid, levels):
    """One histogram per row (mesh) of the valid bins, as (meshes, the widest levels)."""
    width = int(levels.max())
    rows = np.broadcast_to(np.arange(len(bins))[:, None], bins.shape)
    flat = np.bincount((rows * width + bins)[valid], minlength=len(bins) * width)
    return flat.reshape(len(bins), width)


def histogram_modes(counts, levels, start_mean, step, zero):
    """(background, sigma) of meshes from their histograms (a row of `counts` each, the
    first levels[i] bins used), as SExtractor's backguess(): +-3 sigma clipping around
    the median until sigma settles (at most 100 times), then the mode as
    2.5 median - 1.5 mean (the median alone when the two differ by 0.3 sigma or more).
    Cumulative sums once, so each clipping step costs a few operations per mesh."""
    count, width = counts.shape
    rows = np.arange(count)
    index = np.arange(width, dtype=np.float64)
    number = np.zeros((count, width + 1), dtype=np.int64)   # counts below each bin
    np.cumsum(counts, axis=1, out=number[:, 1:])
    first = np.zeros((count, width + 1))
    np.cumsum(counts * index, axis=1, out=first[:, 1:])
    second = np.zeros((count, width + 1))
    np.cumsum(counts * index * index, axis=1, out=second[:, 1:])
    # SExtractor's median walk takes bins from the low end of [lcut, hcut] while their sum
    # is below the high end's, else from the high end; it stops at the first k >= lcut
    # whose count up to k plus the one up to k - 1, counted from lcut, reaches the total
    # (checked against the walk itself in the tests). pair is nondecreasing along a row;
    # shifted by row, one searchsorted serves every mesh.
    pair = number[:, 1:] + number[:, :-1]
    shift = 2 * int(number[:, -1].max()) + 2
    flat = (pair + rows[:, None] * shift).ravel()
    top = levels - 1
    lcut, hcut = np.zeros(count, dtype=np.int64), top.astype(np.int64)
    sigma, previous = 10.0 * top, np.ones(count)
    mean, median = start_mean.astype(np.float64), start_mean.astype(np.float64)
    active = np.ones(count, dtype=bool)
    padded = np.concatenate([counts, np.zeros((count, 1), dtype=counts.dtype)], axis=1)
    for _ in range(100):
        active &= (sigma >= 0.1) & (np.abs(sigma / previous - 1.0) > 1e-4)
        if not active.any():
            break
        previous = np.where(active, sigma, previous)
        end = np.maximum(hcut + 1, lcut)
        base = number[rows, lcut]
        total = number[rows, end] - base
        target = total + 2 * base + rows * shift
        k = np.maximum(np.searchsorted(flat, target, side="left") - rows * width, lcut)
        low = number[rows, k] - base
        below = k - 1
        peak = np.maximum(padded[rows, np.maximum(below, 0)], padded[rows, k])
        with np.errstate(divide="ignore", invalid="ignore"):
            split = np.where(peak > 0, (total - 2.0 * low) / (2.0 * peak), 0.0)
            new_mean = np.where(total > 0, (first[rows, end] - first[rows, lcut]) / total, 0.0)
            spread = np.where(total > 0, (second[rows, end] - second[rows, lcut]) / total
                              - new_mean ** 2, 0.0)
        new_median = np.where(below >= 0, below + 0.5 + split, 0.0)
        new_sigma = np.sqrt(np.where(spread > 0, spread, 0.0))
        median = np.where(active, new_median, median)
        mean = np.where(active, new_mean, mean)
        sigma = np.where(active, new_sigma, sigma)
        low_edge, high_edge = median - 3 * sigma, median + 3 * sigma
        lcut = np.where(active, np.where(low_edge > 0, _c_round(low_edge), 0), lcut)
        hcut = np.where(active, np.where(high_edge < top, _c_round(high_edge), top), hcut)
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.abs((mean - median) / sigma) < 0.3
    mode = np.where(near, BACK_PEARSON * median - (BACK_PEARSON - 1) * mean, median)
    background = np.where(sigma > 0, zero + mode * step, zero + mean * step)
    return background, np.where(sigma > 0, sigma * step, 0.0)


def histogram_mode(counts, quantisation):
    """histogram_modes of one histogram: (background, sigma)."""
    mean, levels, step, zero = quantisation
    background, sigma = histogram_modes(np.asarray(counts)[None, :levels], np.array([levels]),
                                        np.array([mean]), np.array([step], np.float64),
                                        np.array([zero], np.float64))
    return float(background[0]), float(sigma[0])


def _c_round(value):
    """C's (int)(v > 0 ? v + 0.5 : v - 0.5): halves rounded away from zero."""
    return np.trunc(np.where(value > 0, value + 0.5, value - 0.5)).astype(np.int64)


def mesh_row_levels(data, variance, usable, box):
    """For one row of background meshes (arrays `box` rows high): per mesh, the image's
    background and sigma and the variance map's, as SExtractor's makeback() computes them
    with a weight map: each clipped at 2 sigma, a variance counted only where its image
    pixel is kept, then each histogram's mode; NaN for meshes with under half their pixels
    usable or no variance inside its clip."""
    good = _row_of_meshes(usable, box, False)
    size = _row_of_meshes(np.ones(usable.shape, dtype=bool), box, False).sum(axis=1)
    image = _row_of_meshes(data.astype(np.float32, copy=False), box, np.float32(0))
    noise = _row_of_meshes(variance, box, np.float32(0))
    mean, sigma, count = _masked_mean_sigma(image, good)
    low, high = (mean - 2 * sigma).astype(np.float32), (mean + 2 * sigma).astype(np.float32)
    wmean, wsigma, _ = _masked_mean_sigma(noise, good)
    wlow, whigh = (wmean - 2 * wsigma).astype(np.float32), (wmean + 2 * wsigma).astype(np.float32)
    kept = good & (image >= low[:, None]) & (image <= high[:, None])
    noise_kept = kept & (noise >= wlow[:, None]) & (noise <= whigh[:, None])
    usable_mesh = (count >= BACK_MINGOODFRAC * size) & noise_kept.any(axis=1)
    levels = np.full((4, len(good)), np.nan)
    if not usable_mesh.any():
        return levels
    image_q = _quantisations(image, kept)
    noise_q = _quantisations(noise, noise_kept)
    bins = _bins(image, image_q[2], image_q[3], image_q[1])
    inside = good & (bins >= 0) & (bins < image_q[1][:, None])
    noise_bins = _bins(noise, noise_q[2], noise_q[3], noise_q[1])
    noise_inside = inside & (noise_bins >= 0) & (noise_bins < noise_q[1][:, None])
    use = np.flatnonzero(usable_mesh)
    for first, counts, (mean, nlevels, step, zero) in (
            (0, _histograms(bins, inside, image_q[1]), image_q),
            (2, _histograms(noise_bins, noise_inside, noise_q[1]), noise_q)):
        levels[first:first + 2, use] = histogram_modes(
            counts[use], nlevels[use], mean[use], step[use].astype(np.float64),
            zero[use].astype(np.float64))
    return levels


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
    return _shrinking_median(back, size // 2), _shrinking_median(sigma, size // 2)


def _shrinking_median(values, half):
    """The median over (2h+1) x (2h+1) meshes around each mesh, h shrunk to the distance to
    the nearest edge in each direction (as SExtractor's filterback()); one sliding-window
    median per window shape."""
    from numpy.lib.stride_tricks import sliding_window_view
    ny, nx = values.shape
    reach_y = np.minimum(np.minimum(np.arange(ny), ny - 1 - np.arange(ny)), half)
    reach_x = np.minimum(np.minimum(np.arange(nx), nx - 1 - np.arange(nx)), half)
    out = np.empty_like(values)
    for hy in np.unique(reach_y):
        rows = np.flatnonzero(reach_y == hy)
        for hx in np.unique(reach_x):
            cols = np.flatnonzero(reach_x == hx)
            windows = sliding_window_view(values, (2 * hy + 1, 2 * hx + 1))
            medians = np.median(windows[rows[:, None] - hy, cols[None, :] - hx], axis=(-2, -1))
            out[np.ix_(rows, cols)] = medians
    return out


def mesh_maps(data, variance, usable, box, filtersize):
    """((image background, image sigma), (variance background, variance sigma)) per
    background mesh, median-filtered, as SExtractor's makeback() with a weight map."""
    ny = data.shape[0]
    levels = np.stack([mesh_row_levels(data[j:j + box], variance[j:j + box],
                                       usable[j:j + box], box)
                       for j in range(0, ny, box)], axis=1)
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
