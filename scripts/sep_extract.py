#!/usr/bin/env python
"""Source extraction on a FITS or TIFF sky image with sep (SExtractor as a library).

Writes a catalog with SExtractor's column names and conventions (1-based pixels, THETA in
degrees counter-clockwise from +x, SExtractor FLAGS bits), and optionally the background,
background RMS and segmentation images and a PNG with each object's ellipse.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_common import (  # noqa: E402
    add_image_arguments, Catalog, log, mask_from_image, read_image_argument, run_cli,
    ToolError, write_catalog, write_fits_image,
)

CATALOG_COLUMNS = (
    "NUMBER", "X_IMAGE", "Y_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE", "ALPHA_J2000", "DELTA_J2000",
    "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELLIPTICITY", "KRON_RADIUS", "FLUX_ISO", "FLUX_AUTO",
    "FLUXERR_AUTO", "MAG_AUTO", "MAG_BEST", "FLUX_RADIUS", "ISOAREA_IMAGE", "BACKGROUND",
    "FLAGS",
)
DEFAULT_KERNEL = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
ZEROPOINT_KEYS = ("MAGZP", "PHOTZP", "MAGZPT")
# SExtractor's FLAGS bits.
FLAG_BLENDED = 2
FLAG_SATURATED = 4
FLAG_TRUNCATED = 8
FLAG_APERTURE_INCOMPLETE = 16
FLAG_DEBLEND_OVERFLOW = 64
KRON_MEASURE_RADIUS = 6.0  # SExtractor measures the first moment within 6 isophotal radii
MAG_UNDEFINED = 99.0       # SExtractor's magnitude for a non-positive flux


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    io = parser.add_argument_group("input and output")
    add_image_arguments(io)
    io.add_argument("--catalog", required=True, help="output catalog (tab-separated)")
    io.add_argument("--background", help="output background image (FITS)")
    io.add_argument("--rms", help="output background RMS image (FITS)")
    io.add_argument("--segmentation", help="output segmentation map (FITS, NUMBER labels)")
    io.add_argument("--overlay", help="output PNG of the image with each object's ellipse")
    io.add_argument("--overlay-stretch", default="asinh", choices=("asinh", "zscale"))
    io.add_argument("--mask", help="mask image (FITS/TIFF, same shape as the image)")
    io.add_argument("--mask-thresh", type=float, default=0.0,
                    help="mask pixels with values above this are masked (default 0)")
    det = parser.add_argument_group("detection")
    det.add_argument("--filter", default="default",
                     help="'none', 'default' (3x3 1 2 1 / 2 4 2 / 1 2 1) or a kernel file")
    det.add_argument("--filter-type", default="matched", choices=("matched", "conv"))
    det.add_argument("--thresh", type=float, default=1.5,
                     help="detection threshold, in units of the error (or absolute)")
    det.add_argument("--err-model", default="global", choices=("global", "map", "none"),
                     help="error: global background RMS, the RMS map, or none (absolute "
                          "threshold)")
    det.add_argument("--minarea", type=int, default=5)
    det.add_argument("--deblend-nthresh", type=int, default=32)
    det.add_argument("--deblend-cont", type=float, default=0.005)
    det.add_argument("--no-clean", action="store_true", help="do not clean detections")
    det.add_argument("--clean-param", type=float, default=1.0)
    bkg = parser.add_argument_group("background")
    bkg.add_argument("--back-size", type=int, default=64, help="background box size (px)")
    bkg.add_argument("--back-filtersize", type=int, default=3,
                     help="background median filter size (boxes)")
    phot = parser.add_argument_group("photometry")
    phot.add_argument("--zeropoint", type=float,
                      help="magnitude zero point (default: header MAGZP/PHOTZP, else 0)")
    phot.add_argument("--gain", type=float,
                      help="gain in e-/count for the Poisson error (default: none, as "
                           "SExtractor's GAIN 0)")
    phot.add_argument("--saturation", type=float,
                      help="saturation level in image units (default: header SATURATE)")
    phot.add_argument("--kron-factor", type=float, default=2.5,
                      help="k of SExtractor's PHOT_AUTOPARAMS (default 2.5)")
    phot.add_argument("--kron-min-radius", type=float, default=3.5,
                      help="r_min of SExtractor's PHOT_AUTOPARAMS (default 3.5)")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    positive = {"--minarea": args.minarea, "--deblend-nthresh": args.deblend_nthresh,
                "--back-size": args.back_size, "--back-filtersize": args.back_filtersize,
                "--kron-factor": args.kron_factor}
    for name, value in positive.items():
        if value <= 0:
            raise ToolError(f"{name} must be positive (got {value})")
    if not 0 <= args.deblend_cont <= 1:
        raise ToolError(f"--deblend-cont must be between 0 and 1 (got {args.deblend_cont})")
    if args.thresh <= 0 and args.err_model != "none":
        raise ToolError(f"--thresh must be positive (got {args.thresh})")
    if args.gain is not None and args.gain < 0:
        raise ToolError(f"--gain must not be negative (got {args.gain})")


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


def image_keyword(header, keys):
    """The first of the header keys present with a numeric value, as (value, key)."""
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), key
    return None, None


def build_mask(image, mask_path, mask_thresh):
    """Pixels ignored by the background and the extraction: the user's mask and NaNs."""
    mask = image.invalid
    if image.invalid is not None:
        log(f"masked {int(image.invalid.sum())} NaN/infinite pixel(s)")
    if mask_path:
        user = mask_from_image(mask_path, image.shape, mask_thresh)
        log(f"mask: {int(user.sum())} pixel(s) above {mask_thresh:g} are masked")
        mask = user if mask is None else (mask | user)
    return mask


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


def estimate_background(data, mask, args):
    import sep
    return run_sep(lambda: sep.Background(data, mask=mask, bw=args.back_size,
                                          bh=args.back_size, fw=args.back_filtersize,
                                          fh=args.back_filtersize),
                   "estimate the background")


def detect(data_sub, mask, err, kernel, args):
    """sep.extract with the user's settings; returns (objects, segmentation map)."""
    import sep
    return run_sep(lambda: sep.extract(
        data_sub, args.thresh, err=err, mask=mask, minarea=args.minarea,
        filter_kernel=kernel, filter_type=args.filter_type,
        deblend_nthresh=args.deblend_nthresh, deblend_cont=args.deblend_cont,
        clean=not args.no_clean, clean_param=args.clean_param, segmentation_map=True),
        "extract sources")


def auto_photometry(data_sub, objects, mask, err, gain, kron_factor, kron_min_radius):
    """SExtractor's AUTO photometry: KRON_RADIUS, FLUX_AUTO, FLUXERR_AUTO and aperture flags.

    KRON_RADIUS = max(k x first-moment radius, r_min), in units of A and B; FLUX_AUTO is
    the flux in the ellipse of semi-axes KRON_RADIUS x (A, B).
    """
    import sep
    x, y, a, b, theta = (objects[k] for k in ("x", "y", "a", "b", "theta"))
    kron, kron_flags = sep.kron_radius(data_sub, x, y, a, b, theta, KRON_MEASURE_RADIUS,
                                       mask=mask)
    kron = np.maximum(kron_factor * np.nan_to_num(kron), kron_min_radius)
    flux, flux_err, flux_flags = sep.sum_ellipse(
        data_sub, x, y, a, b, theta, kron, err=err, gain=gain, mask=mask, subpix=1)
    return kron, flux, flux_err, kron_flags | flux_flags


def magnitudes(flux, zeropoint):
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = zeropoint - 2.5 * np.log10(flux)
    return np.where(flux > 0, mag, MAG_UNDEFINED)


def sextractor_flags(objects, aperture_flags, saturated):
    """Map sep's flags to SExtractor's bits: 2 blended, 4 saturated, 8 truncated at the
    image edge, 16 AUTO aperture incomplete, 64 deblending overflow."""
    import sep
    flags = np.zeros(len(objects), dtype=np.int64)
    flags |= np.where(objects["flag"] & sep.OBJ_MERGED, FLAG_BLENDED, 0)
    flags |= np.where(saturated, FLAG_SATURATED, 0)
    flags |= np.where(objects["flag"] & sep.OBJ_TRUNC, FLAG_TRUNCATED, 0)
    flags |= np.where(aperture_flags & sep.APER_TRUNC, FLAG_APERTURE_INCOMPLETE, 0)
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


def build_catalog(image, data_sub, background, objects, segmap, mask, err, args, zeropoint,
                  saturation):
    """Measure every object and return the catalog with SExtractor's columns."""
    import sep
    count = len(objects)
    if count == 0:
        return Catalog((name, np.zeros(0)) for name in CATALOG_COLUMNS)
    x, y, a, b = objects["x"], objects["y"], objects["a"], objects["b"]
    kron, flux_auto, flux_err, aper_flags = auto_photometry(
        data_sub, objects, mask, err, args.gain or None, args.kron_factor,
        args.kron_min_radius)
    half_light, _ = sep.flux_radius(data_sub, x, y, KRON_MEASURE_RADIUS * a, 0.5,
                                    normflux=flux_auto, mask=mask, subpix=5)
    ra, dec = sky_coordinates(image.wcs, x, y)
    ny, nx = image.shape
    col = np.clip(np.rint(x).astype(int), 0, nx - 1)
    row = np.clip(np.rint(y).astype(int), 0, ny - 1)
    mag = magnitudes(flux_auto, zeropoint)
    saturated = saturated_objects(image.data, segmap, count, saturation)
    return Catalog([
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
        ("MAG_BEST", mag),
        ("FLUX_RADIUS", half_light),
        ("ISOAREA_IMAGE", objects["tnpix"].astype(np.int64)),
        ("BACKGROUND", background[row, col].astype(float)),
        ("FLAGS", sextractor_flags(objects, aper_flags, saturated)),
    ])


def choose_zeropoint(args, header):
    if args.zeropoint is not None:
        return args.zeropoint, "--zeropoint"
    value, key = image_keyword(header, ZEROPOINT_KEYS)
    if value is not None:
        return value, f"header {key}"
    return 0.0, "default; no MAGZP/PHOTZP in the header"


def choose_saturation(args, header):
    if args.saturation is not None:
        return (args.saturation if args.saturation > 0 else None), "--saturation"
    value, key = image_keyword(header, ("SATURATE", "SATURAT"))
    return value, (f"header {key}" if key else "none given: FLAGS bit 4 is never set")


def error_for(model, bkg):
    if model == "global":
        return bkg.globalrms
    if model == "map":
        return bkg.rms()
    return None


def extract_sources(args):
    """The whole job: read, background, detect, measure, write. Returns the catalog."""
    image = read_image_argument(args)
    ny, nx = image.shape
    log(f"image: {nx} x {ny} pixels, {image.data.dtype}, from {image.description}")
    kernel = load_kernel(args.filter)
    mask = build_mask(image, args.mask, args.mask_thresh)
    bkg = estimate_background(image.data, mask, args)
    log(f"background: global level {bkg.globalback:.6g}, global RMS {bkg.globalrms:.6g}")
    background = bkg.back(dtype=image.data.dtype)
    data_sub = image.data - background
    err = error_for(args.err_model, bkg)
    objects, segmap = detect(data_sub, mask, err, kernel, args)
    zeropoint, zp_source = choose_zeropoint(args, image.header)
    saturation, sat_source = choose_saturation(args, image.header)
    log(f"zero point {zeropoint:g} ({zp_source}); saturation "
        f"{'none' if saturation is None else f'{saturation:g}'} ({sat_source})")
    catalog = build_catalog(image, data_sub, background, objects, segmap, mask, err, args,
                            zeropoint, saturation)
    write_catalog(args.catalog, catalog)
    log(f"detected {catalog.nrows} objects")
    write_images(args, image, background, bkg, segmap)
    if args.overlay:
        from ellipse_overlay import render_overlay, catalog_layer
        layer = catalog_layer(catalog, "clusex", "detections", scale=1.0)
        render_overlay(data_sub, [layer], args.overlay, stretch=args.overlay_stretch, mask=mask,
                       title=f"{catalog.nrows} objects, Kron ellipses")
    return catalog


def write_images(args, image, background, bkg, segmap):
    header = image.header.copy()
    if args.background:
        write_fits_image(args.background, background, header)
    if args.rms:
        write_fits_image(args.rms, bkg.rms(dtype=image.data.dtype), header)
    if args.segmentation:
        seg_header = header.copy()
        for key in ("BUNIT", "MAGZP", "PHOTZP", "SATURATE"):
            seg_header.remove(key, ignore_missing=True)
        seg_header["COMMENT"] = "segmentation map: pixel value = catalog NUMBER, 0 = sky"
        write_fits_image(args.segmentation, segmap.astype(np.int32), seg_header)


def main(argv=None):
    args = parse_args(argv)
    extract_sources(args)


if __name__ == "__main__":
    run_cli(main)
