"""SExtractor's star/galaxy separation: FWHM_IMAGE and CLASS_STAR, as SExtractor 2.25
computes them (src/analyse.c, examineiso and endobject; src/neurro.c), vectorised over all
objects with one pass over the segmentation map.

- The isophotal profile: 8 areas, the pixels of the object's footprint above thresholds
  spaced geometrically from the analysis threshold to the object's peak.
- FWHM_IMAGE: a weighted fit of log(pixel) against r^2 over the footprint's pixels above
  max(peak / 5, threshold) and below saturation, as a Gaussian, corrected for sampling.
- CLASS_STAR: the response of the neural network of a .nnw file (SExtractor's
  default.nnw: 10 inputs, 10 hidden neurons, 1 output) to log10 of the 8 areas in units of
  the seeing disc, of peak / threshold, and of the seeing FWHM in arcsec.
"""

from dataclasses import dataclass

import numpy as np

from astro_common import require_file, ToolError

NISO = 8
SEEING_STAR_MIN_SN = 30.0       # stars that set the seeing estimate: S/N above this,
SEEING_MAX_ELONGATION = 1.25    # round,
SEEING_MIN_STARS = 3            # and at least this many of them


@dataclass(frozen=True)
class NeuralNetwork:
    """A feed-forward network as SExtractor's .nnw files hold it."""

    sizes: tuple
    in_bias: np.ndarray
    in_scale: np.ndarray
    weights: tuple          # per layer: (inputs, outputs) array
    biases: tuple           # per layer: (outputs,) array
    out_bias: np.ndarray
    out_scale: np.ndarray

    def respond(self, inputs):
        """The output of each row of inputs (n, n_in) -> (n, n_out)."""
        layer = np.asarray(inputs, dtype=float) * self.in_scale + self.in_bias
        for weights, bias in zip(self.weights, self.biases):
            layer = 1.0 / (1.0 + np.exp(-(layer @ weights + bias)))
        return (layer - self.out_bias) / self.out_scale


def read_nnw(path):
    """A .nnw file: 'NNW', then (comments and blank lines aside) the layer sizes, the input
    biases and scales, one row per neuron of each layer (its input weights and its bias),
    the output biases and scales."""
    what = "the neural-network weights file"
    require_file(path, what)
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    if not lines or not lines[0].startswith("NNW"):
        raise ToolError(f"{what} '{path}' is not a SExtractor .nnw file (no NNW first line)")
    rows = []
    for number, line in enumerate(lines[1:], 2):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            rows.append((number, [float(v) for v in text.split()]))
        except ValueError:
            raise ToolError(f"{what}, line {number}: '{text[:40]}' is not a row of "
                            "numbers") from None
    try:
        return _network(rows)
    except (IndexError, ValueError) as err:
        raise ToolError(f"{what} is malformed: {err}") from None


def _network(rows):
    def take(count, name):
        if not rows:
            raise ValueError(f"it ends before the {name}")
        number, values = rows.pop(0)
        if len(values) != count:
            raise ValueError(f"line {number} has {len(values)} values where the {name} "
                             f"need {count}")
        return np.array(values)

    if not rows:
        raise ValueError("it holds no layer sizes")
    first_number, sizes = rows.pop(0)
    nlayers = int(sizes[0]) if sizes else 0
    if nlayers < 2 or len(sizes) != nlayers + 1 or any(s < 1 for s in sizes[1:]):
        raise ValueError(f"line {first_number} must give the number of layers and the size "
                         "of each")
    sizes = tuple(int(s) for s in sizes[1:])
    in_bias, in_scale = take(sizes[0], "input biases"), take(sizes[0], "input scales")
    weights, biases = [], []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layer = np.array([take(n_in + 1, "neuron weights") for _ in range(n_out)])
        weights.append(layer[:, :n_in].T)
        biases.append(layer[:, n_in])
    out_bias, out_scale = take(sizes[-1], "output biases"), take(sizes[-1], "output scales")
    if rows:
        raise ValueError(f"line {rows[0][0]} is one row too many")
    if not np.all(out_scale != 0):
        raise ValueError("an output scale is zero")
    return NeuralNetwork(sizes, in_bias, in_scale, tuple(weights), tuple(biases), out_bias,
                         out_scale)


# --------------------------------------------------------------------------------------
# The profile, the FWHM and the class
# --------------------------------------------------------------------------------------

def footprint_pixels(segmap):
    """(labels, flat indices) of every pixel of every object's footprint."""
    flat = segmap.ravel()
    index = np.flatnonzero(flat)
    return flat[index].astype(np.int64), index


def isophotal_profile(data_sub, labels, index, count, thresh):
    """The peak of each object and its 8 isophotal areas (SExtractor's obj->iso)."""
    values = data_sub.ravel()[index].astype(np.float32)
    peak = np.full(count + 1, -np.inf, dtype=np.float32)
    np.maximum.at(peak, labels, values)
    peak = peak[1:]
    thresh = np.float32(thresh)
    areas = np.zeros((count, NISO), dtype=np.int64)
    positive = (peak > 0) & (thresh > 0)
    ratio = np.where(positive, peak / thresh, 1.0).astype(np.float64)
    for i in range(NISO):
        level = np.where(positive, thresh * np.power(ratio, i / NISO), 0.0).astype(np.float32)
        above = values > level[labels - 1]
        areas[:, i] = np.bincount(labels[above] - 1, minlength=count)
    return peak.astype(np.float64), areas


def sextractor_fwhm(data_sub, labels, index, x, y, a, b, peak, thresh, saturation):
    """FWHM_IMAGE (px): SExtractor's Gaussian fit to the log profile above max(peak / 5,
    threshold) and below saturation (per object: the level minus the local background)."""
    count = len(x)
    ny, nx = data_sub.shape
    values = data_sub.ravel()[index].astype(np.float64)
    owner = labels - 1
    level = np.maximum(peak / 5.0, thresh)
    use = (values > level[owner]) & (values < saturation[owner]) & (level[owner] > 0)
    owner, values = owner[use], values[use]
    dx = index[use] % nx - x[owner]
    dy = index[use] // nx - y[owner]
    d2 = dx * dx + dy * dy
    weight = values * values
    logs = np.log(values)

    def total(weights):
        return np.bincount(owner, weights, minlength=count)

    s, sx, sxx = total(weight), total(d2 * weight), total(d2 * d2 * weight)
    sy, sxy = total(logs * weight), total(logs * d2 * weight)
    det = s * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = -(s * sxy - sx * sy) / det
        slope = np.maximum(slope, 1.0 / (13.0 * a * b))   # FWHM at most about 6 sigma
        fwhm = 1.6651 / np.sqrt(slope)
        fwhm = np.where(fwhm > 0, fwhm - 1.0 / (4.0 * fwhm), fwhm)  # undersampling
    good = (np.abs(det) > 0) & (level > 0) & np.isfinite(fwhm)
    return np.where(good, fwhm, 0.0)


def class_star(network, areas, peak, thresh, seeing_arcsec, pixel_scale):
    """CLASS_STAR of every object from its isophotal profile (SExtractor's endobject)."""
    disc = (seeing_arcsec / pixel_scale) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(areas > 0, np.log10(areas / disc), np.log10(0.01))
        peak_term = np.log10(np.where(peak > 0, peak / thresh, 0.1)) if thresh > 0 \
            else np.full(len(peak), -1.0)
    inputs = np.column_stack([logs[:, :1], peak_term, logs[:, 1:],
                              np.full(len(peak), np.log10(seeing_arcsec))])
    if inputs.shape[1] != network.sizes[0] or network.sizes[-1] != 1:
        raise ToolError(f"the neural network takes {network.sizes[0]} inputs and gives "
                        f"{network.sizes[-1]} output(s); CLASS_STAR needs 10 and 1 "
                        "(SExtractor's default.nnw)")
    return network.respond(inputs)[:, 0]


def estimate_seeing(fwhm_px, flags, elongation, snr, pixel_scale):
    """The seeing FWHM (arcsec) from the image: the median FWHM_IMAGE of bright (S/N > 30),
    unflagged, round objects on the stellar locus (the compact end of the FWHM
    distribution: within 20 % of its lowest quartile's median). (value or None, stars)."""
    chosen = (flags == 0) & (elongation < SEEING_MAX_ELONGATION) & (snr > SEEING_STAR_MIN_SN) \
        & (fwhm_px > 0.5) & np.isfinite(fwhm_px)
    widths = np.sort(fwhm_px[chosen])
    if len(widths) < SEEING_MIN_STARS:
        return None, len(widths)
    core = np.median(widths[:max(SEEING_MIN_STARS, len(widths) // 4)])
    locus = widths[np.abs(widths - core) <= 0.2 * core]
    if len(locus) < SEEING_MIN_STARS:
        return None, len(locus)
    return float(np.median(locus)) * pixel_scale, len(locus)
