"""Photometry shared by the tools that measure fluxes (sep_extract, forced_photometry):
sep calls that grow sep's limits on demand, the background, zero points and magnitudes,
with SExtractor's conventions (MAG = ZP - 2.5 log10 FLUX; 99 for a non-positive flux)."""

import numpy as np

from astro_common import log, ToolError
from astro_images import header_number

ZEROPOINT_KEYS = ("MAGZP", "PHOTZP", "MAGZPT")
MAG_UNDEFINED = 99.0       # SExtractor's magnitude for a non-positive flux
MAGERR_FACTOR = 2.5 / np.log(10.0)   # 1.0857: magnitude error per relative flux error


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
