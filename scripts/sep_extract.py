#!/usr/bin/env python
"""Source extraction on a FITS or TIFF sky image with sep (SExtractor as a library).

Writes a catalog with SExtractor's column names and conventions (1-based pixels, THETA in
degrees counter-clockwise from +x, SExtractor FLAGS bits), and optionally the background,
background RMS and segmentation images and a PNG with each object's ellipse.
"""

import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import Catalog, write_catalog  # noqa: E402
from astro_clean import give_pixels, merge_cleaned, pixel_groups  # noqa: E402,I100
from astro_common import (  # noqa: E402
    between, existing_file, finite_float, log, new_parser, non_negative_float,
    non_negative_int, Outputs,
    positive_float, positive_int, run_cli, ToolError,
)
from astro_ellipses import kron_ellipses, SATURATED_FLAG  # noqa: E402
from astro_images import (  # noqa: E402
    add_image_arguments, header_number, mask_from_image, pixel_scale_of, plane_hdu_argument,
    read_image, read_image_argument, require_same_shape, write_fits_image,
)
from astro_photometry import (  # noqa: E402
    apertures_beyond_image, choose_zeropoint, crowded_objects, estimate_background,
    growth_curve_beyond_image, isophotal_corrected_fluxes, KRON_MEASURE_RADIUS, magnitudes,
    MASK_TYPES, masked_pixel_corrections, run_sep, sums_with_errors, weight_gain_map,
)
from astro_weights import (  # noqa: E402,I100
    choose_hdu, combine_flags, filtered, filtered_with_bad, FLAG_HDU_NAMES, FLAG_TYPES,
    INTERP_MAXLAG, interpolation_sources, read_flag_map, variance_map, weight_flags,
    WEIGHT_HDU_NAMES, WEIGHT_TYPES,
)
from astro_stellarity import (  # noqa: E402,I100
    class_star, estimate_seeing, footprint_pixels, isophotal_profile, read_nnw,
    sextractor_fwhm,
)

CATALOG_COLUMNS = (
    "NUMBER", "X_IMAGE", "Y_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE", "ALPHA_J2000", "DELTA_J2000",
    "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELLIPTICITY", "KRON_RADIUS", "FLUX_ISO", "FLUX_AUTO",
    "FLUXERR_AUTO", "MAG_AUTO", "MAG_BEST", "FLUX_RADIUS", "ISOAREA_IMAGE", "BACKGROUND",
    "FWHM_IMAGE", "ELONGATION", "CLASS_STAR", "FLAGS",
)
DEFAULT_NNW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.nnw")
DEFAULT_SEEING = 1.2        # arcsec: SExtractor's default SEEING_FWHM, when nothing better
DEFAULT_KERNEL = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
# SExtractor's FLAGS bits.
FLAG_CROWDED = 1
FLAG_BLENDED = 2
FLAG_SATURATED = SATURATED_FLAG
FLAG_TRUNCATED = 8
FLAG_APERTURE_INCOMPLETE = 16
FLAG_DEBLEND_OVERFLOW = 64
# How the catalog's computed columns are written (SExtractor's own precision).
COLUMN_FORMATS = {
    "X_IMAGE": "%.4f", "Y_IMAGE": "%.4f", "ALPHA_J2000": "%.7f", "DELTA_J2000": "%.7f",
    "A_IMAGE": "%.4f", "B_IMAGE": "%.4f", "THETA_IMAGE": "%.3f", "ELLIPTICITY": "%.4f",
    "KRON_RADIUS": "%.3f", "FLUX_RADIUS": "%.4f", "MAG_AUTO": "%.4f", "MAG_BEST": "%.4f",
    "FLUX_ISO": "%.7g", "FLUX_AUTO": "%.7g", "FLUXERR_AUTO": "%.7g", "BACKGROUND": "%.7g",
    "FWHM_IMAGE": "%.3f", "ELONGATION": "%.3f", "CLASS_STAR": "%.3f",
}


@dataclass(frozen=True)
class Detection:
    """SExtractor's detection settings, as sep.extract takes them."""

    thresh: float = 1.5
    err_model: str = "global"      # global RMS, the RMS map, or none (absolute threshold)
    minarea: int = 5
    filter_type: str = "matched"
    deblend_nthresh: int = 32
    deblend_cont: float = 0.005
    clean: bool = True
    clean_param: float = 1.0


@dataclass(frozen=True)
class Photometry:
    """AUTO photometry and flags: PHOT_AUTOPARAMS, GAIN, SATUR_LEVEL, MAG_ZEROPOINT."""

    zeropoint: float = 0.0
    gain: float = None             # None: no Poisson term (SExtractor's GAIN 0)
    saturation: float = None       # None: FLAGS bit 4 is never set
    kron_factor: float = 2.5
    kron_min_radius: float = 3.5
    mask_type: str = "correct"     # SExtractor's MASK_TYPE for the AUTO photometry


@dataclass(frozen=True)
class StarGalaxy:
    """CLASS_STAR's inputs: the seeing (None: estimated from the image), the pixel scale
    and the neural network."""

    seeing_fwhm: float = None      # arcsec
    pixel_scale: float = 1.0       # arcsec per pixel
    network: object = None


def parse_args(argv=None):
    parser = new_parser(__doc__)
    io = parser.add_argument_group("input and output")
    add_image_arguments(io)
    io.add_argument("--catalog", required=True, help="output catalog (tab-separated)")
    io.add_argument("--background", help="output background image (FITS)")
    io.add_argument("--rms", help="output background RMS image (FITS)")
    io.add_argument("--segmentation", help="output segmentation map (FITS, NUMBER labels)")
    io.add_argument("--overlay", help="output PNG of the image with each object's ellipse")
    io.add_argument("--galaxy-json", help="also write this file (Galaxy's galaxy.json) naming "
                                          "the catalog's columns for Galaxy's column pickers")
    io.add_argument("--overlay-stretch", default="asinh", choices=("asinh", "zscale"))
    io.add_argument("--mask", type=existing_file,
                    help="mask image (FITS/TIFF, same shape as the image)")
    io.add_argument("--mask-thresh", type=finite_float, default=0.0,
                    help="mask pixels with values above this are masked (default 0)")
    wgt = parser.add_argument_group("weights and flags (SExtractor's WEIGHT_IMAGE, "
                                    "FLAG_IMAGE)")
    wgt.add_argument("--weight", type=existing_file,
                     help="weight map (FITS; may be the image's own file with --weight-hdu)")
    wgt.add_argument("--weight-hdu", type=plane_hdu_argument,
                     help="HDU of the weight map: a number, a name (WGT, INVVAR) or 'auto': "
                          f"the first HDU named {', '.join(WEIGHT_HDU_NAMES)}, and no "
                          "weighting when there is none (default: the first with an image)")
    wgt.add_argument("--weight-type", default="map_weight", choices=WEIGHT_TYPES,
                     help="map_weight: inverse variance up to a factor (DES WGT, DECam oow, "
                          "Legacy Surveys invvar); map_var: variance; map_rms: RMS")
    wgt.add_argument("--weight-thresh", type=finite_float,
                     help="bad pixels: weights at or below it (default 0), variances or "
                          "RMS at or above it (default none)")
    wgt.add_argument("--flag-image", type=existing_file,
                     help="integer flag map (FITS): IMAFLAGS_ISO and NIMAFLAGS_ISO columns")
    wgt.add_argument("--flag-hdu", type=plane_hdu_argument,
                     help="HDU of the flag map: a number, a name or 'auto': the first HDU "
                          f"named {', '.join(FLAG_HDU_NAMES)}, none when there is none")
    wgt.add_argument("--flag-type", default="or", choices=FLAG_TYPES,
                     help="how the footprint's flags combine (SExtractor's FLAG_TYPE)")
    wgt.add_argument("--interp-type", default="all", choices=("all", "none"),
                     help="bad-weight pixels: 'all' fills them from their neighbours for the "
                          "detection and the measurements (SExtractor's INTERP_TYPE ALL, "
                          "its default); 'none' leaves them out")
    wgt.add_argument("--interp-maxxlag", type=non_negative_int, default=INTERP_MAXLAG,
                     help="INTERP_MAXXLAG: at most this many pixels filled along a row")
    wgt.add_argument("--interp-maxylag", type=non_negative_int, default=INTERP_MAXLAG,
                     help="INTERP_MAXYLAG: at most this many pixels filled up a column")
    det = parser.add_argument_group("detection")
    det.add_argument("--filter", default="default",
                     help="'none', 'default' (3x3 1 2 1 / 2 4 2 / 1 2 1) or a kernel file")
    det.add_argument("--filter-type", choices=("matched", "conv"),
                     help="matched (default) or conv (SExtractor's: the default with a "
                          "weight map, whose per-pixel noise matched filtering would weigh)")
    det.add_argument("--thresh", type=finite_float, default=1.5,
                     help="detection threshold, in units of the error (or absolute)")
    det.add_argument("--err-model", default="global", choices=("global", "map", "none"),
                     help="error: global background RMS, the RMS map, or none (absolute "
                          "threshold)")
    det.add_argument("--minarea", type=positive_int, default=5)
    det.add_argument("--deblend-nthresh", type=positive_int, default=32)
    det.add_argument("--deblend-cont", type=between(0, 1), default=0.005)
    det.add_argument("--no-clean", action="store_true", help="do not clean detections")
    det.add_argument("--clean-param", type=positive_float, default=1.0)
    bkg = parser.add_argument_group("background")
    bkg.add_argument("--back-size", type=positive_int, default=64,
                     help="background box size (px)")
    bkg.add_argument("--back-filtersize", type=positive_int, default=3,
                     help="background median filter size (boxes)")
    phot = parser.add_argument_group("photometry")
    phot.add_argument("--zeropoint", type=finite_float,
                      help="magnitude zero point (default: header MAGZP/PHOTZP, else 0)")
    phot.add_argument("--gain", type=non_negative_float,
                      help="gain in e-/count for the Poisson error (default: none, as "
                           "SExtractor's GAIN 0)")
    phot.add_argument("--saturation", type=finite_float,
                      help="saturation level in image units (default: header SATURATE)")
    phot.add_argument("--kron-factor", type=positive_float, default=2.5,
                      help="k of SExtractor's PHOT_AUTOPARAMS (default 2.5)")
    phot.add_argument("--kron-min-radius", type=non_negative_float, default=3.5,
                      help="r_min of SExtractor's PHOT_AUTOPARAMS (default 3.5)")
    phot.add_argument("--mask-type", default="correct", choices=MASK_TYPES,
                      help="SExtractor's MASK_TYPE for FLUX_AUTO: the other objects' pixels "
                           "and masked or bad pixels inside an object's Kron ellipse are "
                           "replaced by their mirror image through its centre (correct, "
                           "the default), or set to 0 (blank); none: neighbours are summed "
                           "as they are, masked pixels count as 0")
    star = parser.add_argument_group("star/galaxy separation (CLASS_STAR)")
    star.add_argument("--seeing-fwhm", type=positive_float,
                      help="seeing FWHM in arcsec (SExtractor's SEEING_FWHM; default: "
                           "measured on the image's stars)")
    star.add_argument("--pixel-scale", type=positive_float,
                      help="arcsec per pixel (default: from the WCS or CDELT, else 1)")
    star.add_argument("--nnw", type=existing_file, default=DEFAULT_NNW,
                      help="neural-network weights (default: SExtractor's default.nnw)")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    if args.thresh <= 0:
        raise ToolError(f"--thresh must be positive (got {args.thresh})" +
                        ("; with --err-model none it is an absolute level above the "
                         "background" if args.err_model == "none" else ""))


def load_kernel(spec):
    """The detection filter: None, sep's default 3x3 kernel, or a kernel read from a file."""
    if spec == "none":
        return None
    if spec == "default":
        return DEFAULT_KERNEL
    if not os.path.isfile(spec):
        raise ToolError(f"filter kernel file '{spec}' not found")
    rows = []
    with open(spec, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            text = line.split("#")[0].strip()
            if not text or text.upper().startswith("CONV"):  # SExtractor .conv header
                continue
            try:
                rows.append([float(value) for value in text.split()])
            except ValueError:
                raise ToolError(f"filter kernel line {number} is not a row of numbers: "
                                f"'{text[:40]}'") from None
    if not rows:
        raise ToolError("the filter kernel file holds no numbers")
    if len({len(row) for row in rows}) != 1:
        raise ToolError("the filter kernel rows have different lengths; a 2-D rectangular "
                        "array of numbers is needed")
    kernel = np.array(rows)
    if not np.all(np.isfinite(kernel)):
        raise ToolError("the filter kernel holds NaN or infinite values")
    if not kernel.any():
        raise ToolError("the filter kernel is all zeros")
    return kernel


def detection_mask(image, mask_path, mask_thresh):
    """Pixels ignored by the background and the extraction: the user's mask and NaNs."""
    mask = image.invalid
    if image.invalid is not None:
        log(f"masked {int(image.invalid.sum())} NaN/infinite pixel(s)")
    if mask_path:
        user = mask_from_image(mask_path, image.shape, mask_thresh)
        fraction = user.mean()
        log(f"mask: {int(user.sum())} pixel(s) above {mask_thresh:g} are masked "
            f"({100 * fraction:.1f} % of the image)")
        if fraction > 0.9:
            log("warning: more than 90 % of the image is masked; is the mask inverted (a "
                "weight map, where 0 means bad, given as a mask)?")
        mask = user if mask is None else (mask | user)
    if mask is not None and mask.all():
        raise ToolError("every pixel of the image is masked: nothing is left to measure")
    return mask


def detect(data_sub, mask, err, kernel, detection):
    """sep.extract with the user's settings; returns (objects, segmentation map)."""
    import sep
    d = detection
    return run_sep(lambda: sep.extract(
        data_sub, d.thresh, err=err, mask=mask, minarea=d.minarea, filter_kernel=kernel,
        filter_type=d.filter_type, deblend_nthresh=d.deblend_nthresh,
        deblend_cont=d.deblend_cont, clean=d.clean, clean_param=d.clean_param,
        segmentation_map=True), "extract sources")


def normalised(kernel):
    """The detection kernel as sep filters with it: divided by the sum of its |weights|."""
    weights = np.asarray(kernel, dtype=np.float64)
    return weights / np.abs(weights).sum()


def threshold_pixels(data_sub, mask, err, kernel, detection):
    """(the pixels above the detection threshold as sep.extract applies it, the image
    filtered as sep filters it): the image filtered with the normalised kernel (zero
    beyond the edges, masked pixels 0) against thresh x the noise, or sep's matched
    filter against thresh. The arrays may be a band of rows of the image with the
    kernel's reach above and below (outside_threshold_pixels)."""
    if mask is not None and not mask.any():
        mask = None
    data = data_sub if mask is None else np.where(mask, 0, data_sub).astype(np.float32)
    noise = None if err is None else np.asarray(err, dtype=np.float32)
    weights = None if kernel is None else normalised(kernel)
    smoothed = data if weights is None else filtered(data, weights)
    if weights is not None and detection.filter_type == "matched" and noise is not None \
            and noise.ndim:
        if mask is not None:
            noise = np.where(mask, np.inf, noise)
        with np.errstate(divide="ignore"):
            inverse = np.where(noise > 0, 1.0 / np.square(noise), 0).astype(np.float32)
        signal = filtered(data * inverse, weights)
        norm = filtered(inverse, np.square(weights))
        del inverse
        with np.errstate(divide="ignore", invalid="ignore"):
            above = signal / np.sqrt(norm) > detection.thresh
    else:
        above = smoothed > (detection.thresh if noise is None else
                            np.float32(detection.thresh) * noise)
        if mask is not None:   # a masked pixel's noise counts as infinite
            above &= ~mask
    return above, smoothed


def outside_threshold_pixels(data_sub, mask, err, kernel, detection, segmap, band=128):
    """(PixelGroups of the threshold pixels outside every object, the filtered image at
    their pixels): threshold_pixels a band of rows at a time, each with the kernel's
    reach above and below, so that neither the filtered image nor the threshold map is
    ever held whole (the same float32 sums: the rows outside the image are left out
    alike)."""
    ny = data_sub.shape[0]
    reach = 0 if kernel is None else np.shape(kernel)[0] // 2
    indices, values = [], []
    for start in range(0, ny, band):
        low, high = max(0, start - reach), min(ny, start + band + reach)
        rows = slice(start - low, start - low + min(band, ny - start))

        def part(array):
            return array if array is None or not np.ndim(array) else array[low:high]
        above, smoothed = threshold_pixels(part(data_sub), part(mask), part(err), kernel,
                                           detection)
        outside = np.flatnonzero(above[rows] & (segmap[start:start + band] == 0))
        values.append(np.ascontiguousarray(smoothed[rows]).ravel()[outside])
        indices.append(outside + start * data_sub.shape[1])
    return pixel_groups(np.concatenate(indices), data_sub.shape), np.concatenate(values)


def outside_groups(above, segmap):
    """The 8-connected groups of threshold pixels outside every object (PixelGroups) of
    a whole threshold map."""
    return pixel_groups(np.flatnonzero(above & (segmap == 0)), above.shape)


def undersized(groups, minarea):
    """The pixels of the groups smaller than minarea (a boolean image): the detections
    smaller than DETECT_MINAREA, which SExtractor blanks too in MASK_TYPE CORRECT and
    BLANK (those of the detections CLEAN removed are larger: SExtractor puts them
    back)."""
    small = groups.sizes < minarea
    small[0] = False
    pixels = np.zeros(groups.shape, dtype=bool)
    pixels.ravel()[groups.index[small[groups.labels]]] = True
    return pixels


def auto_photometry(data_sub, objects, mask, err, gain, kron_factor, kron_min_radius,
                    poisson_map=None, segmap=None, mask_type="correct", others=None):
    """SExtractor's AUTO photometry: KRON_RADIUS, FLUX_AUTO, FLUXERR_AUTO and aperture flags.

    KRON_RADIUS = max(k x first-moment radius, r_min), in units of A and B, measured
    without the masked pixels and (MASK_TYPE correct or blank) the other objects' pixels;
    FLUX_AUTO is the flux in the ellipse of semi-axes KRON_RADIUS x (A, B), those pixels
    replaced as SExtractor's MASK_TYPE says (astro_photometry.masked_pixel_corrections).
    poisson_map: the per-pixel Poisson term of a weighted image
    (astro_photometry.weight_gain_map), instead of gain. others: pixels of detections that
    are not objects (undersized), blanked as the objects' are. Returns (KRON_RADIUS,
    FLUX_AUTO, FLUXERR_AUTO, and SExtractor's FLAGS bits 16, aperture incomplete: the box
    of either ellipse or of FLUX_RADIUS's growth curve reaches beyond the image, and 1,
    crowded).
    """
    import sep
    x, y, a, b, theta = (objects[k] for k in ("x", "y", "a", "b", "theta"))
    neighbours = {} if mask_type == "none" or segmap is None else {
        "segmap": segmap, "seg_id": np.arange(1, len(x) + 1, dtype=np.int32)}
    kron_mask = mask if others is None or mask_type == "none" else (
        others if mask is None else (mask | others))
    kron, _ = sep.kron_radius(data_sub, x, y, a, b, theta, KRON_MEASURE_RADIUS,
                              mask=kron_mask, **neighbours)
    kron = np.maximum(kron_factor * np.nan_to_num(kron), kron_min_radius)
    ellipses = (x, y, a, b, theta, kron)
    blanked = kron_mask if mask_type == "none" or segmap is None else (
        segmap > 0 if kron_mask is None else (kron_mask | (segmap > 0)))
    crowded = crowded_objects(blanked, segmap, x, y, a, b, theta,
                              (KRON_MEASURE_RADIUS, kron))
    del blanked
    # nothing masked and no total-flux gain term yet: both follow the corrections
    flux, flux_err, _ = sums_with_errors(
        sep.sum_ellipse, data_sub, ellipses, err, None, poisson_map, subpix=1)
    flux_variance = np.square(flux_err)
    if segmap is not None:
        boxes = tuple(objects[k] for k in ("xmin", "xmax", "ymin", "ymax"))
        extra = masked_pixel_corrections(data_sub, err, poisson_map, segmap, mask, ellipses,
                                         mask_type, others, boxes)
        flux = flux + extra[0]
        flux_variance += extra[1] + extra[2]
    if poisson_map is None and gain:
        flux_variance += np.maximum(flux, 0) / gain
    flux_err = np.sqrt(np.maximum(flux_variance, 0))
    shape = data_sub.shape
    incomplete = apertures_beyond_image(x, y, a, b, theta, KRON_MEASURE_RADIUS, shape) | \
        apertures_beyond_image(x, y, a, b, theta, kron, shape) | \
        growth_curve_beyond_image(x, y, a, shape)   # FLUX_RADIUS's, always in the catalog
    return kron, flux, flux_err, incomplete, crowded


def sextractor_flags(objects, incomplete, saturated, crowded):
    """SExtractor's FLAGS bits: 1 crowded (blanked neighbours or bad pixels over 10 % of the
    AUTO aperture or of the ellipse its Kron radius is measured in), 2 blended, 4
    saturated, 8 truncated at the image edge, 16 AUTO aperture incomplete, 64 deblending
    overflow; bits 2, 8 and 64 from sep's flags."""
    import sep
    flags = np.where(crowded, FLAG_CROWDED, 0).astype(np.int64)
    flags |= np.where(objects["flag"] & sep.OBJ_MERGED, FLAG_BLENDED, 0)
    flags |= np.where(saturated, FLAG_SATURATED, 0)
    flags |= np.where(objects["flag"] & sep.OBJ_TRUNC, FLAG_TRUNCATED, 0)
    flags |= np.where(incomplete, FLAG_APERTURE_INCOMPLETE, 0)
    flags |= np.where(objects["flag"] & sep.OBJ_DOVERFLOW, FLAG_DEBLEND_OVERFLOW, 0)
    return flags


def saturated_objects(raw, segmap, count, level):
    """True for each object with a pixel at or above the saturation level."""
    if level is None or count == 0:
        return np.zeros(count, dtype=bool)
    from scipy import ndimage
    peaks = ndimage.maximum(raw, labels=segmap, index=np.arange(1, count + 1))
    return np.asarray(peaks) >= level


def sky_coordinates(wcs, x, y):
    """RA, Dec (deg) of 0-based pixel positions, or NaN without a celestial WCS."""
    if wcs is None or len(x) == 0:
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    ra, dec = wcs.all_pix2world(x, y, 0)
    return np.asarray(ra), np.asarray(dec)


def build_catalog(image, data_sub, background, objects, segmap, mask, err, photometry,
                  stars, thresh, poisson_map=None, others=None):
    """Measure every object; returns the catalog with SExtractor's columns and the lines
    that say where the seeing and the pixel scale came from."""
    import sep
    count = len(objects)
    if count == 0:
        return Catalog((name, np.zeros(0)) for name in CATALOG_COLUMNS), []
    p = photometry
    x, y, a, b = objects["x"], objects["y"], objects["a"], objects["b"]
    kron, flux_auto, flux_err, incomplete, crowded = auto_photometry(
        data_sub, objects, mask, err, p.gain or None, p.kron_factor, p.kron_min_radius,
        poisson_map, segmap, p.mask_type, others)
    half_light, _ = sep.flux_radius(data_sub, x, y, KRON_MEASURE_RADIUS * a, 0.5,
                                    normflux=flux_auto, mask=mask, subpix=5)
    ra, dec = sky_coordinates(image.wcs, x, y)
    ny, nx = image.shape
    col = np.clip(np.rint(x).astype(int), 0, nx - 1)
    row = np.clip(np.rint(y).astype(int), 0, ny - 1)
    mag = magnitudes(flux_auto, p.zeropoint)
    # SExtractor's MAG_BEST: MAG_ISOCOR where neighbours may bias MAG_AUTO (FLAGS bit 1)
    best = magnitudes(np.where(crowded, isophotal_corrected_fluxes(
        objects["flux"], objects["npix"], objects["thresh"]), flux_auto), p.zeropoint)
    saturated = saturated_objects(image.data, segmap, count, p.saturation)
    flags = sextractor_flags(objects, incomplete, saturated, crowded)
    with np.errstate(divide="ignore", invalid="ignore"):
        elongation = np.where(b > 0, a / np.where(b > 0, b, 1.0), 1.0)
        snr = np.where(flux_err > 0, flux_auto / flux_err, 0.0)
    local_back = background[row, col].astype(float)
    fwhm, class_values, notes = star_galaxy(data_sub, segmap, objects, thresh, p.saturation,
                                            local_back, flags, elongation, snr, stars)
    catalog = Catalog([
        ("NUMBER", np.arange(1, count + 1)),
        ("X_IMAGE", x + 1.0),
        ("Y_IMAGE", y + 1.0),
        ("XPEAK_IMAGE", objects["xpeak"] + 1),
        ("YPEAK_IMAGE", objects["ypeak"] + 1),
        ("ALPHA_J2000", ra),
        ("DELTA_J2000", dec),
        ("A_IMAGE", a.astype(float)),
        ("B_IMAGE", b.astype(float)),
        ("THETA_IMAGE", np.degrees(objects["theta"])),
        ("ELLIPTICITY", np.where(a > 0, 1.0 - b / np.where(a > 0, a, 1.0), 0.0)),
        ("KRON_RADIUS", kron),
        ("FLUX_ISO", objects["flux"].astype(float)),
        ("FLUX_AUTO", flux_auto),
        ("FLUXERR_AUTO", flux_err),
        ("MAG_AUTO", mag),
        ("MAG_BEST", best),
        ("FLUX_RADIUS", half_light),
        ("ISOAREA_IMAGE", objects["tnpix"].astype(np.int64)),
        ("BACKGROUND", local_back),
        ("FWHM_IMAGE", fwhm),
        ("ELONGATION", elongation),
        ("CLASS_STAR", class_values),
        ("FLAGS", flags),
    ])
    return catalog, notes


def star_galaxy(data_sub, segmap, objects, thresh, saturation, local_back, flags,
                elongation, snr, stars):
    """FWHM_IMAGE and CLASS_STAR of every object, and lines saying which seeing and pixel
    scale were used (SExtractor's examineiso and neural network)."""
    labels, index = footprint_pixels(segmap)
    count = len(objects)
    peak, areas = isophotal_profile(data_sub, labels, index, count, thresh)
    level = np.full(count, np.inf) if saturation is None else saturation - local_back
    fwhm = sextractor_fwhm(data_sub, labels, index, objects["x"], objects["y"],
                           objects["a"].astype(float), objects["b"].astype(float), peak,
                           thresh, level)
    seeing, source = stars.seeing_fwhm, "--seeing-fwhm"
    if seeing is None:
        seeing, used = estimate_seeing(fwhm, flags, elongation, snr, stars.pixel_scale)
        source = f"measured: the median FWHM_IMAGE of {used} bright, round, unflagged " \
                 "objects on the stellar locus"
        if seeing is None:
            seeing = DEFAULT_SEEING
            source = f"SExtractor's default: too few stars ({used}) to measure it"
    notes = [f"CLASS_STAR: seeing FWHM {seeing:.3f} arcsec ({source}); pixel scale "
             f"{stars.pixel_scale:.4g} arcsec/pixel"]
    log(notes[0])
    return fwhm, class_star(stars.network, areas, peak, thresh, seeing, stars.pixel_scale), \
        notes


def choose_saturation(given, header):
    """(level or None, where it came from): the option (0 = none), else SATURATE."""
    if given is not None:
        return (given if given > 0 else None), "--saturation"
    value, key = header_number(header, ("SATURATE", "SATURAT"))
    return value, (f"header {key}" if key else "none given: FLAGS bit 4 is never set")


def choose_gain(given, header, weighted):
    """The gain: the option (0 = none); with a weight map and no option, the header's GAIN
    (survey headers such as DES's carry the right one), said in the log."""
    if given is not None:
        return given or None
    if weighted:
        value, key = header_number(header, ("GAIN", "ARAWGAIN"))
        if value:
            log(f"gain {value:g} from the header's {key} (the Poisson term of the errors; "
                "give --gain 0 for none)")
            return value
    return None


def choose_pixel_scale(given, image):
    """Arcsec per pixel: the option, else the WCS (or CDELT), else 1 (said in the log)."""
    if given is not None:
        return given
    scale = pixel_scale_of(image)
    if scale is None:
        log("pixel scale: no WCS and no --pixel-scale: CLASS_STAR takes 1 arcsec per pixel "
            "(give --pixel-scale and --seeing-fwhm for a meaningful CLASS_STAR)")
        return 1.0
    return scale


def error_for(model, bkg):
    if model == "global":
        return bkg.globalrms
    if model == "map":
        return bkg.rms()
    return None


@dataclass
class Extraction:
    """What one run measured: the catalog and the maps it can write."""

    catalog: Catalog
    notes: list
    background: np.ndarray
    rms: object          # a function giving the RMS map (computed only when written)
    segmentation: np.ndarray
    data_sub: np.ndarray
    mask: np.ndarray


BAD_VARIANCE = 1e30  # SExtractor's BIG: the variance of a bad-weight pixel


@dataclass(frozen=True)
class Weighting:
    """A weight map's variance and bad pixels, and SExtractor's INTERP_TYPE for them."""

    variance: np.ndarray
    bad: np.ndarray
    background: object = None      # the image's sep.Background without the bad pixels
    interpolate: bool = True
    max_xlag: int = INTERP_MAXLAG
    max_ylag: int = INTERP_MAXLAG


def extract_sources(image, mask, kernel, back_size, back_filtersize, detection, photometry,
                    stars, weighting=None, flags=None):
    """Background, detection and measurement of one image; returns an Extraction.
    weighting: a Weighting (per-pixel variance from a weight map, its bad pixels; the
    variance is used up: filled in place, then turned into the error map);
    flags: (flag map, FLAG_TYPE) for IMAFLAGS_ISO."""
    variance, bkg, fill = None, None, None
    if weighting is not None:
        background_mask = weighting.bad if mask is None else (mask | weighting.bad)
        variance, mask, still_bad, fill = weighted_pixels(mask, weighting)
        bkg = weighting.background
    else:
        background_mask = mask
    if bkg is None:
        bkg = estimate_background(image.data, background_mask, back_size, back_filtersize)
    del background_mask
    log(f"background: global level {bkg.globalback:.6g}, global RMS {bkg.globalrms:.6g}")
    background = bkg.back(dtype=image.data.dtype)
    data_sub = image.data - background
    if fill is not None:  # the interpolated image, background-subtracted
        targets, sources = fill
        data_sub.ravel()[targets] = image.data.ravel()[sources] - background.ravel()[targets]
        del fill, targets, sources
    poisson_map = None
    if variance is not None:  # thresholds and errors follow the weight map, pixel by pixel
        detect_err = detection_noise(variance, still_bad, kernel, detection.filter_type)
        poisson_map = weight_gain_map(data_sub, variance, bkg.globalrms, photometry.gain)
        # nothing needs the variance any more: its memory becomes the error map
        err = np.sqrt(variance, out=variance) if variance.dtype == image.data.dtype \
            else np.sqrt(variance).astype(image.data.dtype)
        detect_err = err if detect_err is None else detect_err
    else:
        err = detect_err = error_for(detection.err_model, bkg)
    objects, segmap = detect(data_sub, mask, detect_err, kernel, detection)
    others, merged_pixels = None, None
    if len(objects) and (photometry.mask_type != "none" or detection.clean):
        groups, smoothed = outside_threshold_pixels(data_sub, mask, detect_err, kernel,
                                                    detection, segmap)
        if photometry.mask_type != "none":
            others = undersized(groups, detection.minarea)
        if detection.clean:  # SExtractor's merge of the detections CLEAN removed
            objects, merged_pixels = merge_cleaned(
                objects, segmap, groups, data_sub, smoothed, detection.minarea,
                detection.clean_param)
        del groups, smoothed
    del detect_err
    # the absolute analysis threshold, as SExtractor's CLASS_STAR takes it
    thresh = detection.thresh * (1.0 if detection.err_model == "none" and variance is None
                                 else bkg.globalrms)
    catalog, notes = build_catalog(image, data_sub, background, objects, segmap, mask, err,
                                   photometry, stars, thresh, poisson_map, others)
    del poisson_map, others
    if flags is not None and len(objects):
        labels, index = footprint_pixels(segmap)
        combined, counted = combine_flags(flags[0], labels, index, len(objects), flags[1])
        catalog.insert_before("FLAGS", "IMAFLAGS_ISO", combined)
        catalog.insert_before("FLAGS", "NIMAFLAGS_ISO", counted)
    elif flags is not None:
        catalog["IMAFLAGS_ISO"] = catalog["NIMAFLAGS_ISO"] = np.zeros(0, dtype=np.int64)
    if weighting is not None:
        reach = (1, 1) if kernel is None else np.shape(kernel)
        catalog["FLAGS_WEIGHT"] = weight_flags(segmap, still_bad, len(objects), reach)
    dtype = image.data.dtype
    if merged_pixels is not None:
        segmap = give_pixels(segmap, merged_pixels)
    return Extraction(catalog, notes, background, lambda: bkg.rms(dtype=dtype),
                      segmap, data_sub, mask)


def detection_noise(variance, bad, kernel, filter_type):
    """The noise the detection threshold follows, or None where it is the error map
    itself. SExtractor filters the variance map with the detection kernel too (conv
    filtering), bad pixels counting as infinite variance: the threshold rises next to
    them. sep's matched filter weighs the noise itself."""
    if kernel is None or filter_type != "conv":
        return None
    noise = filtered_with_bad(variance, normalised(kernel), bad, BAD_VARIANCE)
    np.maximum(noise, 0, out=noise)
    return np.sqrt(noise, out=noise)


def weighted_pixels(mask, weighting):
    """(variance, mask, pixels still bad, the image's fill as (targets, sources)) for the
    detection and the measurements: bad-weight pixels filled from their neighbours
    (INTERP_TYPE ALL; then, as SExtractor's, they count as good; the variance is filled
    in place), the others added to the mask."""
    bad, variance = weighting.bad, weighting.variance
    fill = None
    if weighting.interpolate and bad.any():
        targets, sources, bad = interpolation_sources(bad, weighting.max_xlag,
                                                      weighting.max_ylag)
        variance.ravel()[targets] = variance.ravel()[sources]
        fill = targets, sources
        log(f"interpolated {len(targets)} bad-weight pixel(s) (INTERP_TYPE ALL, lags "
            f"{weighting.max_xlag} x {weighting.max_ylag}); {int(bad.sum())} left out")
    mask = bad if mask is None else (mask | bad)
    if mask.all():
        raise ToolError("every pixel of the image is masked or has a bad weight")
    return variance, mask, bad, fill


def weight_variance(path, hdu, kind, thresh, image, mask, back_size, back_filtersize):
    """(variance map, bad pixels, the image's background without them) of a weight map
    file, or (None, None, None) without one."""
    if path:
        hdu, found = choose_hdu(path, hdu, WEIGHT_HDU_NAMES, "weight map")
    if not path or not found:
        return None, None, None
    weight = read_image(path, "weight map", hdu=hdu)
    require_same_shape(weight, image.shape, "weight map")
    raw = np.where(weight.invalid, np.nan, weight.data) if weight.invalid is not None \
        else weight.data
    variance, bad, sigfac, background = variance_map(raw, kind, thresh, image.data, mask,
                                                     back_size, back_filtersize,
                                                     overwrite=True)
    log(f"weight map ({kind}, {weight.description}): {int(bad.sum())} bad "
        f"pixel(s); variance rescaled by {sigfac ** 2:.5g}")
    if (bad if mask is None else (mask | bad)).all():
        raise ToolError("every pixel of the image is masked or has a bad weight")
    return variance, bad, background


def flag_map(path, hdu, kind, shape):
    """(flag map, FLAG_TYPE) of a flag image file, or None without one."""
    flags = read_flag_map(path, hdu, shape)
    if flags is None:
        return None
    log(f"flag image: {int((flags != 0).sum())} flagged pixel(s); IMAFLAGS_ISO = "
        f"{kind.upper()} over each footprint")
    return flags, kind


def write_outputs(out, args, image, result):
    """Every output the options ask for, under the Outputs' temporary names."""
    write_catalog(out.path(args.catalog), result.catalog, COLUMN_FORMATS, result.notes)
    header = image.header.copy()
    if args.background:
        write_fits_image(out.path(args.background), result.background, header)
    result.background = None  # each map is let go once written: memory stays bounded
    if args.rms:
        write_fits_image(out.path(args.rms), result.rms(), header)
    if args.segmentation:
        seg_header = header.copy()
        for key in ("BUNIT", "MAGZP", "PHOTZP", "SATURATE"):
            seg_header.remove(key, ignore_missing=True)
        seg_header["COMMENT"] = "segmentation map: pixel value = catalog NUMBER, 0 = sky"
        write_fits_image(out.path(args.segmentation),
                         result.segmentation.astype(np.int32, copy=False), seg_header)
    result.segmentation = None
    if args.overlay:
        from astro_pictures import catalog_layer, render_overlay  # matplotlib: only here
        catalog = result.catalog
        layer = catalog_layer(catalog, kron_ellipses(catalog), "detections")
        render_overlay(result.data_sub, [layer], out.path(args.overlay), fmt="png",
                       stretch=args.overlay_stretch, mask=result.mask,
                       title=f"{catalog.nrows} objects, Kron ellipses")


def main(argv=None):
    args = parse_args(argv)
    image = read_image_argument(args)
    ny, nx = image.shape
    log(f"image: {nx} x {ny} pixels, {image.data.dtype}, from {image.description}")
    kernel = load_kernel(args.filter)
    mask = detection_mask(image, args.mask, args.mask_thresh)
    zeropoint, zp_source = choose_zeropoint(args.zeropoint, image.header)
    saturation, sat_source = choose_saturation(args.saturation, image.header)
    variance, bad, background = weight_variance(
        args.weight, args.weight_hdu, args.weight_type, args.weight_thresh, image, mask,
        args.back_size, args.back_filtersize)
    weighting = None if variance is None else Weighting(
        variance, bad, background, args.interp_type == "all", args.interp_maxxlag,
        args.interp_maxylag)
    filter_type = args.filter_type or ("conv" if weighting else "matched")
    detection = Detection(args.thresh, args.err_model, args.minarea, filter_type,
                          args.deblend_nthresh, args.deblend_cont, not args.no_clean,
                          args.clean_param)
    photometry = Photometry(zeropoint, choose_gain(args.gain, image.header, weighting),
                            saturation, args.kron_factor, args.kron_min_radius,
                            args.mask_type)
    stars = StarGalaxy(args.seeing_fwhm, choose_pixel_scale(args.pixel_scale, image),
                       read_nnw(args.nnw))
    flags = flag_map(args.flag_image, args.flag_hdu, args.flag_type, image.shape)
    result = extract_sources(image, mask, kernel, args.back_size, args.back_filtersize,
                             detection, photometry, stars, weighting, flags)
    log(f"zero point {zeropoint:g} ({zp_source}); saturation "
        f"{'none' if saturation is None else f'{saturation:g}'} ({sat_source})")
    image.data = image.invalid = None  # the outputs need the header only
    with Outputs() as out:
        write_outputs(out, args, image, result)
    if args.galaxy_json:
        write_galaxy_column_names(args.galaxy_json, "catalog", list(result.catalog))
    log(f"detected {result.catalog.nrows} objects")


def write_galaxy_column_names(path, output_name, names):
    """Galaxy's tool-provided metadata (galaxy.json, the dict style of profile >= 17.09):
    the column names of one output, which depend on the options (flag image, weights)."""
    import json
    with open(path, "w") as handle:
        json.dump({output_name: {"metadata": {"column_names": names}}}, handle)


if __name__ == "__main__":
    run_cli(main)
