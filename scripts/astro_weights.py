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


def _mesh_view(values, box, fill):
    """Rows of background meshes as a (mesh rows, box, mesh columns, box) view of the
    values (a copy padded with fill only when the meshes at the right or bottom edge are
    partial)."""
    height, width = values.shape
    rows, columns = (height - 1) // box + 1, (width - 1) // box + 1
    if (height, width) != (rows * box, columns * box):
        padded = np.full((rows * box, columns * box), fill, dtype=values.dtype)
        padded[:height, :width] = values
        values = padded
    return values.reshape(rows, box, columns, box)


def _mesh_moments(values, where):
    """Per mesh of a mesh view: (mean, sigma, count) of the values where `where`, summed
    in float64 (sigma: sqrt of E[x^2] - mean^2, 0 if not positive). The others count as
    0, so NaN among them is never summed."""
    count = np.count_nonzero(where, axis=(1, 3))
    kept = np.where(where, values, np.float64(0))
    total = np.maximum(count, 1)
    mean = np.einsum("ijkl->ik", kept) / total
    variance = np.einsum("ijkl,ijkl->ik", kept, kept) / total - mean * mean
    return mean, np.sqrt(np.where(variance > 0, variance, 0.0)), count


def _quantisation(mean, sigma, count):
    """A mesh histogram's (levels, step, zero) from its clipped mean and sigma:
    SExtractor's QUANTIF_NSIGMA 5 sigma either side in up to 4096 levels."""
    levels = np.minimum((_LEVEL_STEP * count + 1).astype(np.int64), QUANTIF_NMAXLEVELS)
    step = np.where(sigma > 0, 2 * QUANTIF_NSIGMA * sigma / levels, 1.0).astype(np.float32)
    return levels, step, (mean - QUANTIF_NSIGMA * sigma).astype(np.float32)


def _mesh_bins(values, step, zero, levels, valid):
    """Histogram bins of the float32 values of a mesh view, computed in float32 and
    truncated towards zero as C does; a spare bin, `levels.max() + 1`, where not valid or
    outside the mesh's own levels (NaN included). Returns (bins as int16, in range)."""
    per_mesh = (slice(None), None, slice(None), None)
    index = values / step[per_mesh]
    index += (np.float32(0.499999) - zero / step)[per_mesh]
    np.trunc(index, out=index)
    inside = valid & (index >= 0) & (index < levels[per_mesh].astype(np.float32))
    bins = np.where(inside, index, np.float32(levels.max() + 1)).astype(np.int16)
    return bins, inside


def _sorted_per_mesh(bins):
    """The bins of a mesh view as (meshes, pixels), each mesh's bins in ascending order:
    what the median walk and the moments of each clipping step are read from."""
    rows, box, columns, _ = bins.shape
    per_mesh = bins.transpose(0, 2, 1, 3).reshape(rows * columns, box * box)
    return np.sort(per_mesh, axis=1)


def histogram_modes(bins, levels, start_mean, step, zero):
    """(background, sigma) of meshes from their histograms, as SExtractor's backguess():
    +-3 sigma clipping around the median until sigma settles (at most 100 times), then
    the mode as 2.5 median - 1.5 mean (the median alone when the two differ by 0.3 sigma
    or more). Each histogram is given as its mesh's pixels' bins in ascending order (a
    row of `bins` each; bins >= levels[i] are not counted): a bin's cumulative count is
    a position in its row, found by searchsorted, and the moments of a range of bins are
    differences of two cumulative sums, so each clipping step costs a few operations
    per mesh."""
    count, width = bins.shape
    rows = np.arange(count)
    starts = rows * width                          # the flat position of each row's start
    offsets = rows * (int(bins.max()) + 2)         # rows apart, so one search serves all
    flat = (bins.astype(np.int64) + offsets[:, None]).ravel()
    first = np.zeros(flat.size + 1, dtype=np.int64)   # integers: the sums are exact
    np.cumsum(bins, axis=None, dtype=np.int64, out=first[1:])
    squares = bins.astype(np.int64)
    squares *= squares
    second = np.zeros(flat.size + 1, dtype=np.int64)
    np.cumsum(squares, axis=None, out=second[1:])
    del squares

    def position(k):
        """Per row, the flat position of its first pixel in a bin >= k."""
        return np.searchsorted(flat, k + offsets, side="left")

    top = levels - 1
    lcut, hcut = np.zeros(count, dtype=np.int64), top.astype(np.int64)
    sigma, previous = 10.0 * top, np.ones(count)
    mean, median = start_mean.astype(np.float64), start_mean.astype(np.float64)
    active = np.ones(count, dtype=bool)
    for _ in range(100):
        active &= (sigma >= 0.1) & (np.abs(sigma / previous - 1.0) > 1e-4)
        if not active.any():
            break
        previous = np.where(active, sigma, previous)
        end = np.maximum(hcut + 1, lcut)
        at_lcut, at_end = position(lcut), position(end)
        base, total = at_lcut - starts, at_end - at_lcut
        # SExtractor's median walk takes bins from the low end of [lcut, hcut] while
        # their sum is below the high end's, else from the high end; it stops at the
        # first k >= lcut where N(k) + N(k + 1) >= total + 2 N(lcut), N(k) being the
        # count below bin k (checked against the walk itself in the tests). As N rises,
        # that k is the bin of the row's ceil(target / 2)-th pixel or the next one.
        target = total + 2 * base
        needed = (target + 1) // 2
        candidate = np.where(needed > 0, flat[starts + np.maximum(needed, 1) - 1] - offsets, 0)
        reached = position(candidate) + position(candidate + 1) - 2 * starts >= target
        k = np.maximum(np.where(reached, candidate, candidate + 1), lcut)
        at_k, after_k = position(k), position(k + 1)
        before_k = np.where(k > 0, at_k - position(np.maximum(k - 1, 0)), after_k - at_k)
        low = at_k - starts - base
        below = k - 1
        peak = np.maximum(before_k, after_k - at_k)
        with np.errstate(divide="ignore", invalid="ignore"):
            split = np.where(peak > 0, (total - 2.0 * low) / (2.0 * peak), 0.0)
            new_mean = np.where(total > 0, (first[at_end] - first[at_lcut]) / total, 0.0)
            spread = np.where(total > 0, (second[at_end] - second[at_lcut]) / total
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
    """histogram_modes of one histogram (counts per bin): (background, sigma)."""
    mean, levels, step, zero = quantisation
    counts = np.asarray(counts)[:levels]
    bins = np.repeat(np.arange(len(counts)), counts)[None, :]
    background, sigma = histogram_modes(bins, np.array([levels]),
                                        np.array([mean]), np.array([step], np.float64),
                                        np.array([zero], np.float64))
    return float(background[0]), float(sigma[0])


def _c_round(value):
    """C's (int)(v > 0 ? v + 0.5 : v - 0.5): halves rounded away from zero."""
    return np.trunc(np.where(value > 0, value + 0.5, value - 0.5)).astype(np.int64)


def mesh_band_histograms(data, variance, usable, box):
    """For a band of rows of background meshes (a multiple of `box` rows high, or the
    image's last rows), the histograms of the image and of the variance map as
    SExtractor's makeback() makes them with a weight map: each clipped at 2 sigma, a
    variance counted only where its image pixel is kept. Returns (usable meshes: at
    least half their pixels usable and a variance inside its clip, then for the image and
    for the variance, over the usable meshes: (sorted bins, levels, clipped mean, step,
    zero)), the meshes row by row. The meshes are views of the band (no copies but for
    partial meshes at the edges)."""
    height, width = usable.shape
    good = _mesh_view(usable, box, False)
    heights = np.minimum(box, height - np.arange(0, height, box))
    widths = np.minimum(box, width - np.arange(0, width, box))
    size = np.outer(heights, widths)
    image = _mesh_view(np.asarray(data, dtype=np.float32), box, np.float32(0))
    noise = _mesh_view(variance, box, np.float32(0))
    per_mesh = (slice(None), None, slice(None), None)
    mean, sigma, count = _mesh_moments(image, good)
    low, high = (mean - 2 * sigma).astype(np.float32), (mean + 2 * sigma).astype(np.float32)
    kept = good & (image >= low[per_mesh]) & (image <= high[per_mesh])
    wmean, wsigma, _ = _mesh_moments(noise, good)
    wlow, whigh = (wmean - 2 * wsigma).astype(np.float32), (wmean + 2 * wsigma).astype(np.float32)
    noise_kept = kept & (noise >= wlow[per_mesh]) & (noise <= whigh[per_mesh])
    usable_mesh = ((count >= BACK_MINGOODFRAC * size) & noise_kept.any(axis=(1, 3))).ravel()
    use = np.flatnonzero(usable_mesh)
    histograms = []
    valid = good
    for values, where in ((image, kept), (noise, noise_kept)):
        clipped_mean, clipped_sigma, clipped_count = _mesh_moments(values, where)
        levels, step, zero = _quantisation(clipped_mean, clipped_sigma, clipped_count)
        bins, valid = _mesh_bins(values, step, zero, levels, valid)  # the image's, then
        histograms.append((_sorted_per_mesh(bins)[use],) + tuple(   # within them
            part.ravel()[use] for part in (levels, clipped_mean, step, zero)))
    return usable_mesh, histograms[0], histograms[1]


def meshes_levels(bands):
    """Per mesh of several bands' mesh_band_histograms: (4, meshes), the image's
    background and sigma, the variance map's background and sigma (each histogram's
    mode and sigma, backguess()), NaN for the meshes not usable."""
    usable = np.concatenate([band[0] for band in bands])
    levels = np.full((4, usable.size), np.nan)
    use = np.flatnonzero(usable)
    if not len(use):
        return levels
    for first, side in ((0, 1), (2, 2)):
        bins, nlevels, mean, step, zero = (np.concatenate([band[side][part] for band in bands])
                                           for part in range(5))
        levels[first:first + 2, use] = histogram_modes(
            bins, nlevels, mean, step.astype(np.float64), zero.astype(np.float64))
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


def mesh_maps(data, variance, usable, box, filtersize, band_pixels=1 << 18, group=2):
    """((image background, image sigma), (variance background, variance sigma)) per
    background mesh, median-filtered, as SExtractor's makeback() with a weight map. The
    histograms are made a band of mesh rows at a time (about band_pixels pixels, at least
    one row of meshes: small enough to stay in the cache), their modes `group` bands at
    a time (fewer, longer steps of the clipping loop)."""
    ny, nx = data.shape
    rows = max(1, band_pixels // (box * nx)) * box
    levels = []
    for start in range(0, ny, rows * group):
        levels.append(meshes_levels([
            mesh_band_histograms(data[j:j + rows], variance[j:j + rows], usable[j:j + rows], box)
            for j in range(start, min(ny, start + rows * group), rows)]))
    levels = np.concatenate(levels, axis=1).reshape(4, (ny - 1) // box + 1, (nx - 1) // box + 1)
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


def variance_map(values, kind, thresh, data, mask, back_size, back_filtersize,
                 overwrite=False):
    """(variance (float32, 0 at bad pixels), bad pixels, the rescaling factor sigfac, the
    image's sep.Background without the masked and bad pixels) of a weight map of the given
    kind, for the image `data` (mask: pixels not to use). Float32 throughout: the memory
    stays a few times the image's. overwrite: the values (float32) may be overwritten,
    their memory becoming the variance."""
    import sep
    bad = bad_weight_pixels(values, kind, thresh)
    if bad.all():
        raise ToolError(f"the weight map has no usable pixel: every value is bad for "
                        f"{kind.upper()} (zero, negative, NaN or beyond the threshold)")
    raw = np.asarray(values, dtype=np.float32)
    if (raw is values and not overwrite) or not raw.flags.writeable:
        raw = raw.copy()
    skip = bad if mask is None else (bad | mask)
    science = sep.Background(np.ascontiguousarray(data), mask=skip, bw=back_size,
                             bh=back_size, fw=back_filtersize, fh=back_filtersize)
    good = ~bad
    if kind == "map_rms":
        np.square(raw, out=raw, where=good)
    elif kind == "map_weight":
        np.divide(np.float32(1.0), raw, out=raw, where=good)
    np.copyto(raw, np.float32(0), where=bad)
    if kind == "map_rms":
        return raw, bad, 1.0, science
    sigfac = weight_scale(data, raw, ~skip, back_size, back_filtersize)
    raw *= np.float32(sigfac ** 2)
    return raw, bad, sigfac, science


def filtered(values, kernel, band=32):
    """values correlated with a kernel, zero beyond the edges, as SExtractor's and sep's
    convolve(): in float32, the terms added kernel pixel by kernel pixel (row by row).
    Bands of `band` rows keep each pass in the cache; one output array, no other
    full-size temporary."""
    values = np.asarray(values, dtype=np.float32)
    kernel = np.asarray(kernel, dtype=np.float32)
    (ny, nx), (kh, kw) = values.shape, kernel.shape
    out = np.zeros((ny, nx), dtype=np.float32)
    term = np.empty((band, nx), dtype=np.float32)
    for y0 in range(0, ny, band):
        y1 = min(y0 + band, ny)
        for i in range(kh):
            dy = i - kh // 2
            low, high = max(y0, -dy), min(y1, ny - dy)   # rows whose row y + dy exists
            if low >= high:
                continue
            source, target = values[low + dy:high + dy], out[low:high]
            for j in range(kw):
                dx = j - kw // 2
                left, right = max(0, -dx), min(nx, nx - dx)
                if left >= right:
                    continue
                part = term[:high - low, left:right]
                np.multiply(source[:, left + dx:right + dx], kernel[i, j], out=part)
                target[:, left:right] += part
    return out


def filtered_with_bad(values, kernel, bad, bad_value):
    """filtered(values with bad_value at the bad pixels, kernel) without a full-size copy:
    values filtered as they are, then the pixels that reach a bad pixel through a non-zero
    kernel weight summed again, term by term in filtered's order (the same float32
    sums). The second step costs the bad pixels times the kernel's size."""
    out = filtered(values, kernel)
    kernel = np.asarray(kernel, dtype=np.float32)
    (ny, nx), (kh, kw) = out.shape, kernel.shape
    by, bx = np.nonzero(bad)
    taps = [(i - kh // 2, j - kw // 2) for i, j in zip(*np.nonzero(kernel))]
    if not len(by) or not taps:
        return out
    reach_y = np.concatenate([by - dy for dy, _ in taps])
    reach_x = np.concatenate([bx - dx for _, dx in taps])
    keep = (reach_y >= 0) & (reach_y < ny) & (reach_x >= 0) & (reach_x < nx)
    ys, xs = np.divmod(np.unique(reach_y[keep] * nx + reach_x[keep]), nx)
    total = np.zeros(len(ys), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            y, x = ys + (i - kh // 2), xs + (j - kw // 2)
            inside = np.flatnonzero((y >= 0) & (y < ny) & (x >= 0) & (x < nx))
            y, x = y[inside], x[inside]
            term = np.where(bad[y, x], np.float32(bad_value), values[y, x]).astype(np.float32)
            total[inside] += term * kernel[i, j]
    out[ys, xs] = total
    return out


def interpolation_sources(bad, xlag=INTERP_MAXLAG, ylag=INTERP_MAXLAG):
    """SExtractor's INTERP_TYPE ALL (see the module notes) as flat indices: (targets, the
    good pixel each target takes its value from, pixels still bad). Only the bad pixels
    are worked on (runs along rows, then along columns), so the cost follows their count.
    """
    ny, nx = bad.shape
    flat = np.flatnonzero(bad)                      # row-major, sorted
    if not len(flat):
        none = np.zeros(0, dtype=np.int64)
        return none, none, bad.copy()
    row, col = np.divmod(flat, nx)
    position = np.arange(len(flat))
    # along x: each run of bad pixels in a row follows the good pixel on its left
    starts = np.ones(len(flat), dtype=bool)
    starts[1:] = (np.diff(flat) != 1) | (col[1:] == 0)
    left = col[np.maximum.accumulate(np.where(starts, position, 0))] - 1
    xfill = (left >= 0) & (col - left <= xlag)
    xsource = row * nx + left
    # along y, column by column (the bad pixels in column-major order): a pixel still bad
    # takes the pixel below it (good, or filled along x), while the column's count of
    # still-bad pixels since its last good one is at most ylag
    order = np.lexsort((row, col))
    r, c, still = row[order], col[order], ~xfill[order]
    key = c * ny + r
    starts = np.ones(len(key), dtype=bool)
    starts[1:] = (np.diff(key) != 1) | (r[1:] == 0)
    start = np.maximum.accumulate(np.where(starts, position, 0))
    last_good = r[start] - 1
    # keys grow along the order, so a running maximum finds the last pixel below that is
    # not still bad: the last one filled along x, or the run's last good pixel
    below = np.maximum.accumulate(np.where(still, c * ny + last_good, key)) - c * ny
    counted = np.cumsum(still)
    since = counted - (counted[start] - still[start])
    yfill = still & (last_good >= 0) & (since <= ylag)
    below_flat = below * nx + c
    # a pixel below that was filled along x hands on its own source
    found = np.minimum(np.searchsorted(flat, below_flat), len(flat) - 1)
    through_x = (flat[found] == below_flat) & xfill[found]
    ysource = np.where(through_x, xsource[found], below_flat)
    targets = np.concatenate([flat[xfill], flat[order][yfill]])
    sources = np.concatenate([xsource[xfill], ysource[yfill]])
    still_bad = bad.copy()
    still_bad.ravel()[targets] = False
    return targets, sources, still_bad


def interpolate_bad_pixels(arrays, bad, xlag=INTERP_MAXLAG, ylag=INTERP_MAXLAG):
    """INTERP_TYPE ALL of each array of `arrays` (the image and its variance) over the bad
    pixels; returns (filled copies, still bad)."""
    targets, sources, still_bad = interpolation_sources(bad, xlag, ylag)
    filled = []
    for values in arrays:
        values = np.array(values, copy=True, order="C")
        values.ravel()[targets] = values.ravel()[sources]
        filled.append(values)
    return filled, still_bad


def weight_flags(segmap, bad, count, kernel_shape=(1, 1)):
    """SExtractor's FLAGS_WEIGHT of objects 1..count (src/scan.c): 1 when a pixel of the
    isophotal footprint has a bad weight; 2 when the detection's filtered variance is bad
    at a footprint pixel or one of its 8 neighbours, i.e. a bad pixel lies within the
    filter kernel's reach (kernel_shape) plus one pixel of the footprint."""
    flags = np.zeros(count, dtype=np.int64)
    if count == 0 or not bad.any():
        return flags
    inside = np.unique(segmap[bad & (segmap > 0)])
    flags[inside - 1] |= FLAGS_WEIGHT_OVERLAP
    near = dilated(bad, (kernel_shape[0] + 2, kernel_shape[1] + 2))
    touched = np.unique(segmap[near & (segmap > 0)])
    flags[touched - 1] |= FLAGS_WEIGHT_TOUCH
    return flags


def dilated(mask, shape):
    """A boolean mask grown by a box of `shape` (scipy's binary_dilation with
    np.ones(shape)): ORs of shifted copies, one axis after the other."""
    out = mask
    for axis, size in enumerate(shape):
        source, out = out, out.copy()
        for shift in range(-(size // 2), size - size // 2):  # scipy's offsets, even sizes too
            if shift == 0 or abs(shift) >= mask.shape[axis]:
                continue
            target = [slice(None)] * 2
            origin = [slice(None)] * 2
            target[axis] = slice(max(shift, 0), mask.shape[axis] + min(shift, 0))
            origin[axis] = slice(max(-shift, 0), mask.shape[axis] + min(-shift, 0))
            out[tuple(target)] |= source[tuple(origin)]
    return out


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
