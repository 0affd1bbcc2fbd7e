#!/usr/bin/env python
"""Forced photometry of a catalog in every band: SExtractor's dual-image mode for any number
of images on the catalog's pixel grid, with colours and a colour-magnitude diagram.

Each object is measured in each band in the detection image's apertures: its Kron ellipse
(X_IMAGE, Y_IMAGE, A_IMAGE, B_IMAGE, THETA_IMAGE, KRON_RADIUS from the catalog) for
FLUX_AUTO, and circles of the given diameters for FLUX_APER. Colours of consecutive bands
(G_R = MAG_AUTO_g - MAG_AUTO_r, ...) follow. Every column of the catalog is kept.
"""

import os
import re
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import read_catalog, write_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    existing_file, finite_float, log, new_parser, non_negative_float, Outputs, positive_int,
    run_cli, ToolError,
)
from astro_ellipses import axis_ratio  # noqa: E402
from astro_images import (  # noqa: E402
    plane_hdu_argument, read_image, read_image_header, require_same_shape,
)
from astro_weights import (  # noqa: E402,I100
    choose_hdu, interpolate_bad_pixels, variance_map, WEIGHT_HDU_NAMES, WEIGHT_TYPES,
)
from astro_photometry import (  # noqa: E402,I100
    apertures_beyond_image, choose_zeropoint, circles_beyond_image, estimate_background,
    KRON_MEASURE_RADIUS, MAG_UNDEFINED, magnitude_errors, magnitudes, run_sep,
    sums_with_errors, weight_gain_map,
)

REQUIRED = ("X_IMAGE", "Y_IMAGE", "A_IMAGE", "THETA_IMAGE", "KRON_RADIUS")
BAND_KEYS = ("BAND", "FILTER", "FILTNAM", "FILTER1")
BAND_NAME = re.compile(r"^[A-Za-z0-9_]+$")
GRID_TOLERANCE = 0.5        # px: the catalog's RA/Dec must land this close to X/Y_IMAGE
STAR_CLASS = 0.8            # CLASS_STAR at or above: drawn as a star in the diagram
# The per-band flag bits (FLAGS_<band>); 16 is SExtractor's own.
FLAG_TRUNCATED = 16         # an aperture runs off the image (SExtractor's test)
FLAG_MASKED = 256           # masked or zero-weight pixels inside the AUTO aperture
FLAG_NO_FLUX = 512          # FLUX_AUTO <= 0: no magnitude
CLIP_SIGMA, CLIP_ROUNDS = 3.0, 10
MAX_COLOUR_ERROR = 0.1      # mag: noisier galaxies do not enter the red-sequence fit


@dataclass(frozen=True)
class Band:
    """One measurement image and how to measure it."""

    name: str
    image_path: str
    zeropoint: float = None         # None: the header's MAGZP/PHOTZP/MAGZPT, else 0
    weight_path: str = None
    mask_path: str = None
    weight_hdu: object = None       # number, EXTNAME or 'auto' (see astro_weights)


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument("--catalog", required=True,
                        help="catalog with X_IMAGE, Y_IMAGE, A_IMAGE, B_IMAGE (or "
                             "ELLIPTICITY), THETA_IMAGE, KRON_RADIUS (sep_extract's, or a join)")
    parser.add_argument("--image", action="append", required=True, type=existing_file,
                        help="measurement image (FITS/TIFF) on the catalog's pixel grid; "
                             "repeat for each band")
    parser.add_argument("--band", action="append", default=[],
                        help="band name of each image, in order (default: its BAND/FILTER "
                             "header key, else --label)")
    parser.add_argument("--bands", help="the band names as one list, e.g. g,r,z (instead of "
                                        "repeating --band)")
    parser.add_argument("--label", action="append", default=[],
                        help="a fallback name of each image (Galaxy passes the dataset's "
                             "element identifier)")
    parser.add_argument("--weight", action="append", default=[],
                        help="weight image of each image, in order ('none' for none)")
    parser.add_argument("--weight-hdu", type=plane_hdu_argument,
                        help="HDU of every weight file: a number, a name (INVVAR, WGT) or "
                             "'auto' (the first HDU with such a name; none: unweighted). "
                             "Without --weight, each image's own file is its weight file")
    parser.add_argument("--interp-type", default="all", choices=("all", "none"),
                        help="bad-weight pixels: 'all' fills them from their neighbours as "
                             "sep_extract does (SExtractor's INTERP_TYPE ALL), 'none' leaves "
                             "them out of the sums")
    parser.add_argument("--weight-type", default="map_var", choices=WEIGHT_TYPES,
                        help="map_var: variance; map_rms: RMS; map_weight: inverse variance "
                             "up to a factor (map_var and map_weight are rescaled to the "
                             "image's noise, as SExtractor does)")
    parser.add_argument("--mask", action="append", default=[],
                        help="mask image of each image, in order ('none' for none): pixels "
                             "above 0 are left out of the sums")
    parser.add_argument("--segmentation", type=existing_file,
                        help="the detection's segmentation map: each object's sums then use "
                             "its own segment and the sky only (neighbours left out)")
    parser.add_argument("--zeropoint", action="append", type=finite_float, default=[],
                        help="zero point of each band, in order (one value: every band; "
                             "default: the header's MAGZP/PHOTZP, else 0)")
    parser.add_argument("--gain", type=non_negative_float,
                        help="gain (e-/count) for the Poisson term of the errors (default none)")
    parser.add_argument("--back-size", type=positive_int, default=64)
    parser.add_argument("--back-filtersize", type=positive_int, default=3)
    parser.add_argument("--apertures", default="",
                        help="aperture diameters in pixels, e.g. 5,10,20 (SExtractor's "
                             "PHOT_APERTURES)")
    parser.add_argument("--colour-aperture", type=finite_float,
                        help="also form colours from this aperture diameter (one of "
                             "--apertures): the colours red-sequence work uses")
    parser.add_argument("--cmd", help="colour-magnitude diagram (PNG)")
    parser.add_argument("--cmd-colour", help="the diagram's colour, e.g. g-r (default: the "
                                             "first two bands)")
    parser.add_argument("--red-sequence", metavar="BRIGHT,FAINT",
                        help="fit the red sequence to galaxies between these magnitudes")
    parser.add_argument("--output", required=True, help="catalog with the new columns")
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    count = len(args.image)
    if args.bands:
        if args.band:
            raise ToolError("give --bands or --band, not both")
        args.band = [b.strip() for b in args.bands.split(",")]
    for name in ("band", "label", "weight", "mask"):
        given = getattr(args, name)
        if given and len(given) != count:
            raise ToolError(f"--{name} was given {len(given)} time(s) for {count} image(s); "
                            "give it once per image, in the same order")
    if len(args.zeropoint) not in (0, 1, count):
        raise ToolError(f"--zeropoint was given {len(args.zeropoint)} times for {count} "
                        "images; give one value for all, or one per image")
    args.apertures = parse_apertures(args.apertures)
    if args.colour_aperture is not None and args.colour_aperture not in args.apertures:
        raise ToolError(f"--colour-aperture {args.colour_aperture:g} is not one of "
                        f"--apertures ({', '.join(f'{d:g}' for d in args.apertures) or 'none'})")
    args.red_sequence = parse_range(args.red_sequence) if args.red_sequence else None


def parse_apertures(text):
    """Diameters (px) from '5,10,20'."""
    diameters = []
    for item in filter(None, (t.strip() for t in text.replace(";", ",").split(","))):
        try:
            value = float(item)
        except ValueError:
            raise ToolError(f"--apertures: '{item}' is not a diameter in pixels") from None
        if not (np.isfinite(value) and value > 0):
            raise ToolError(f"--apertures: each diameter must be positive (got {item})")
        diameters.append(value)
    if len(set(diameters)) != len(diameters):
        raise ToolError("--apertures: a diameter is repeated")
    return diameters


def parse_range(text):
    try:
        bright, faint = (float(v) for v in text.split(","))
    except ValueError:
        raise ToolError(f"--red-sequence '{text}': give BRIGHT,FAINT magnitudes, e.g. "
                        "17,21") from None
    if not (np.isfinite(bright) and np.isfinite(faint) and bright < faint):
        raise ToolError(f"--red-sequence '{text}': the bright limit must be below the faint")
    return bright, faint


# --------------------------------------------------------------------------------------
# Bands and their images
# --------------------------------------------------------------------------------------

def band_name(header, given, label, index):
    """The band of one image: given, else its header, else its label."""
    for candidate, source in ((given, "--band"), (_header_band(header), "header"),
                              (_label_band(label), "dataset name")):
        text = str(candidate or "").strip()
        if text:
            if not BAND_NAME.match(text):
                raise ToolError(f"image {index + 1}: band name '{text}' (from the {source}) "
                                "may hold only letters, digits and _ (it names columns)")
            return text
    raise ToolError(f"image {index + 1} has no band name: give --band (no BAND or FILTER "
                    "key in its header)")


def _label_band(label):
    """A dataset name as a band name: 'r.fits' -> r, 'my r image' -> my_r_image."""
    if not label:
        return None
    stem = re.sub(r"(\.(fits|fit|fts|tiff?|gz|bz2|fz))+$", "", str(label).strip(),
                  flags=re.IGNORECASE)
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or None


def _header_band(header):
    for key in BAND_KEYS:
        try:
            value = header.get(key)
        except Exception:
            continue
        if isinstance(value, str) and value.strip():
            return value.strip().split()[0]
    return None


def check_grid(image, reference, catalog, band):
    """The image must share the first image's shape and the catalog's pixel grid."""
    if reference is not None and image.shape != reference.shape:
        raise ToolError(f"band {band}: the image is {image.shape[1]} x {image.shape[0]} "
                        f"pixels but the first is {reference.shape[1]} x {reference.shape[0]}; "
                        "resample the images to one pixel grid first (e.g. with reproject or "
                        "SWarp)")
    if image.wcs is None or "ALPHA_J2000" not in catalog or not catalog.nrows:
        return
    ra = catalog.floats("ALPHA_J2000", finite=False)
    dec = catalog.floats("DELTA_J2000", finite=False)
    good = np.isfinite(ra) & np.isfinite(dec)
    if not good.any():
        return
    x, y = image.wcs.all_world2pix(ra[good], dec[good], 1)
    offset = np.median(np.hypot(x - catalog.floats("X_IMAGE")[good],
                                y - catalog.floats("Y_IMAGE")[good]))
    if not offset <= GRID_TOLERANCE:
        raise ToolError(f"band {band}: the catalog's objects land {offset:.1f} px away from "
                        "their X_IMAGE/Y_IMAGE in this image: it is not on the catalog's "
                        "pixel grid; resample it first (e.g. with reproject or SWarp)")


def load_band(band, shape_of, catalog, reference, weight_type):
    image = read_image(band.image_path, f"image of band {band.name}")
    check_grid(image, reference, catalog, band.name)
    mask = image.invalid.copy() if image.invalid is not None else \
        np.zeros(image.shape, dtype=bool)
    if band.mask_path:
        extra = read_image(band.mask_path, f"mask of band {band.name}")
        shape_of(extra, image, f"mask of band {band.name}")
        mask |= (extra.data > 0) | (extra.invalid if extra.invalid is not None else False)
    weight = None
    what = f"weight of band {band.name}"
    hdu, found = choose_hdu(band.weight_path, band.weight_hdu, WEIGHT_HDU_NAMES, what) \
        if band.weight_path else (None, False)
    if found:
        weight = read_image(band.weight_path, what, hdu=hdu)
        shape_of(weight, image, what)
    return image, mask, weight


def same_shape(other, image, what):
    require_same_shape(other, image.shape, what)


# --------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Apertures:
    """The detection's apertures of every object (0-based centres, radians)."""

    x: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray
    kron: np.ndarray
    numbers: np.ndarray


def catalog_apertures(catalog):
    catalog.require(REQUIRED)
    a = catalog.floats("A_IMAGE")
    b = catalog.floats("B_IMAGE") if "B_IMAGE" in catalog else a * axis_ratio(catalog)
    numbers = catalog.floats("NUMBER").astype(np.int64) if "NUMBER" in catalog \
        else np.arange(1, catalog.nrows + 1)
    theta = np.radians(catalog.floats("THETA_IMAGE"))
    theta = (theta + np.pi / 2) % np.pi - np.pi / 2   # sep takes [-pi/2, pi/2)
    return Apertures(catalog.floats("X_IMAGE") - 1.0, catalog.floats("Y_IMAGE") - 1.0, a,
                     np.minimum(b, a), theta, catalog.floats("KRON_RADIUS"), numbers)


def measure_band(image, mask, weight, weight_type, apertures, diameters, zeropoint, gain,
                 back_size, back_filtersize, segmap, interpolate=True):
    """Every column of one band, as name -> array (the band suffix is added later)."""
    import sep
    data, err, bkg, variance = image.data, None, None, None
    if weight is not None:
        raw = weight.data if weight.invalid is None \
            else np.where(weight.invalid, np.nan, weight.data)
        variance, bad, _, bkg = variance_map(raw, weight_type, None, image.data, mask,
                                             back_size, back_filtersize)
        background_mask = mask | bad
        if interpolate and bad.any():  # as SExtractor's measurement image (INTERP_TYPE ALL)
            (data, variance), bad = interpolate_bad_pixels([image.data, variance], bad)
        mask = mask | bad
        err = np.sqrt(variance).astype(image.data.dtype)
    else:
        background_mask = mask
    if bkg is None:
        bkg = estimate_background(image.data, background_mask if background_mask.any()
                                  else None, back_size, back_filtersize)
    back = bkg.back(dtype=image.data.dtype)  # the map once: the sums and BACKGROUND_b
    data_sub = data - back
    del data
    if err is None:
        err = bkg.globalrms
    p = apertures
    segment = {} if segmap is None else {"segmap": segmap, "seg_id": p.numbers}
    use_mask = mask if mask.any() else None
    # with a weight map, SExtractor's WEIGHT_GAIN: the Poisson term pixel by pixel
    poisson_map = weight_gain_map(data_sub, variance, bkg.globalrms, gain)
    columns = {}
    if len(p.x):
        flux, flux_err, flags = run_sep(lambda: sums_with_errors(
            sep.sum_ellipse, data_sub, (p.x, p.y, p.a, p.b, p.theta, p.kron), err, gain,
            poisson_map, mask=use_mask, subpix=1, **segment), "measure the AUTO fluxes")
    else:
        flux = flux_err = np.zeros(0)
        flags = np.zeros(0, dtype=np.int64)
    columns["FLUX_AUTO"], columns["FLUXERR_AUTO"] = flux, flux_err
    columns["MAG_AUTO"] = magnitudes(flux, zeropoint)
    columns["MAGERR_AUTO"] = magnitude_errors(flux, flux_err)
    for k, diameter in enumerate(diameters):
        suffix = "" if k == 0 else f"_{k + 1}"
        if len(p.x):
            aper, aper_err, _ = run_sep(lambda: sums_with_errors(
                sep.sum_circle, data_sub, (p.x, p.y, diameter / 2.0), err, gain,
                poisson_map, mask=use_mask, subpix=5, **segment),
                "measure the aperture fluxes")
        else:
            aper = aper_err = np.zeros(0)
        columns[f"FLUX_APER{suffix}"], columns[f"FLUXERR_APER{suffix}"] = aper, aper_err
        columns[f"MAG_APER{suffix}"] = magnitudes(aper, zeropoint)
        columns[f"MAGERR_APER{suffix}"] = magnitude_errors(aper, aper_err)
    ny, nx = image.shape
    col = np.clip(np.rint(p.x).astype(int), 0, nx - 1)
    row = np.clip(np.rint(p.y).astype(int), 0, ny - 1)
    columns["BACKGROUND"] = back[row, col].astype(float) if len(p.x) else np.zeros(0)
    columns["FLAGS"] = band_flags(flags, flux, apertures_off_image(p, diameters, image.shape))
    return columns, bkg


def apertures_off_image(apertures, diameters, shape):
    """SExtractor's FLAGS bit 16 in its dual-image mode (OBJ_APERT_PB, src/photom.c): the
    box it scans for the Kron radius, for the AUTO ellipse or for one of the FLUX_APER
    circles leaves the image."""
    p = apertures
    off = apertures_beyond_image(p.x, p.y, p.a, p.b, p.theta, KRON_MEASURE_RADIUS, shape) \
        | apertures_beyond_image(p.x, p.y, p.a, p.b, p.theta, p.kron, shape)
    for diameter in diameters:
        off |= circles_beyond_image(p.x, p.y, diameter / 2.0, shape)
    return off


def band_flags(sep_flags, flux, off_image):
    """FLAGS_<band>: 16 an aperture leaves the image, 256 masked or zero-weight pixels
    inside the AUTO aperture, 512 no flux (FLUX_AUTO <= 0)."""
    flags = np.where(off_image, FLAG_TRUNCATED, 0)
    flags |= np.where(sep_flags & 0x0020, FLAG_MASKED, 0)       # sep.APER_HASMASKED
    flags |= np.where(flux > 0, 0, FLAG_NO_FLUX)
    return flags.astype(np.int64)


def band_column(name, band):
    """FLUX_AUTO + r -> FLUX_AUTO_r; FLUX_APER_2 + r -> FLUX_APER_r_2 (the suite's vector
    naming, as FLUX_RADIUS_2)."""
    match = re.match(r"^(.*APER)(_\d+)?$", name)
    if match:
        return f"{match.group(1)}_{band}{match.group(2) or ''}"
    return f"{name}_{band}"


def colour(catalog, first, second, kind="AUTO", index=""):
    """MAG_<kind>_first - MAG_<kind>_second (NaN where either has no magnitude) and its
    error."""
    m1 = catalog[f"MAG_{kind}_{first}{index}"]
    m2 = catalog[f"MAG_{kind}_{second}{index}"]
    e1 = catalog[f"MAGERR_{kind}_{first}{index}"]
    e2 = catalog[f"MAGERR_{kind}_{second}{index}"]
    valid = (m1 != MAG_UNDEFINED) & (m2 != MAG_UNDEFINED)
    return np.where(valid, m1 - m2, np.nan), np.where(valid, np.hypot(e1, e2), np.nan)


def colour_name(first, second, suffix=""):
    return f"{first.upper()}_{second.upper()}{suffix}"


# --------------------------------------------------------------------------------------
# The colour-magnitude diagram and the red sequence
# --------------------------------------------------------------------------------------

def fit_red_sequence(magnitude, colour_values, galaxies, bright, faint, errors=None):
    """A straight line colour = slope x mag + intercept through the red sequence of the
    galaxies between two magnitudes: it starts from the redder half (the red sequence is
    the red ridge; bluer field galaxies must not pull it), then is clipped at 3 robust
    sigma until no member changes. Only galaxies with colour errors below MAX_COLOUR_ERROR
    take part, each weighted by 1 / its error (at least 0.01 mag): faint noisy ones would
    tilt the line. Returns a dict, or None with fewer than 5 members."""
    errors = np.zeros(len(magnitude)) if errors is None else \
        np.nan_to_num(np.asarray(errors, dtype=float), nan=np.inf)
    weight = 1.0 / np.maximum(errors, 0.01)
    chosen = galaxies & np.isfinite(colour_values) & (magnitude >= bright) & \
        (magnitude <= faint) & (errors <= MAX_COLOUR_ERROR)
    if chosen.sum() < 5:
        return None
    members = chosen & (colour_values >= np.median(colour_values[chosen])) \
        if chosen.sum() >= 10 else chosen
    fit = None
    for _ in range(CLIP_ROUNDS):
        if members.sum() < 5:
            return None
        slope, intercept = np.polyfit(magnitude[members], colour_values[members], 1,
                                      w=weight[members])
        residual = colour_values - (slope * magnitude + intercept)
        # the intrinsic scatter from the better-measured half of the members, robustly
        # (1.4826 x the median absolute residual); each galaxy is then kept within 3 x
        # (that scatter and its own error, in quadrature)
        precise = members & (errors <= np.median(errors[members]))
        scatter = float(1.4826 * np.median(np.abs(residual[precise])))
        fit = {"slope": float(slope), "intercept": float(intercept), "scatter": scatter,
               "members": int(members.sum())}
        updated = chosen & (np.abs(residual) <= CLIP_SIGMA * np.hypot(max(scatter, 1e-3),
                                                                      errors))
        if np.array_equal(updated, members):
            break
        members = updated
    fit["member_mask"] = members
    return fit


def draw_cmd(path, magnitude, mag_name, colour_values, colour_err, colour_label, stars,
             fit, bright_faint):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    shown = np.isfinite(colour_values) & (magnitude != MAG_UNDEFINED)
    for selection, style, label in ((shown & ~stars, {"fmt": "o", "color": "#c0392b"},
                                     "galaxies"),
                                    (shown & stars, {"fmt": "*", "color": "#2874a6"},
                                     f"stars (CLASS_STAR >= {STAR_CLASS})")):
        if selection.any():
            ax.errorbar(magnitude[selection], colour_values[selection],
                        yerr=colour_err[selection], ms=3, lw=0.6, elinewidth=0.5,
                        linestyle="none", label=f"{label} ({int(selection.sum())})", **style)
    if fit is not None:
        line = np.linspace(*bright_faint, 50)
        ax.plot(line, fit["slope"] * line + fit["intercept"], "k-", lw=1.2,
                label=f"red sequence: {fit['slope']:+.3f} mag + {fit['intercept']:.3f}, "
                      f"scatter {fit['scatter']:.3f} ({fit['members']} members)")
        for sign in (-1, 1):
            ax.plot(line, fit["slope"] * line + fit["intercept"] + sign * CLIP_SIGMA *
                    fit["scatter"], "k:", lw=0.8)
    if shown.sum() > 10:  # a few faint objects with huge colours must not squash the plot
        low, high = np.percentile(colour_values[shown], [1, 99])
        margin = 0.25 * (high - low) + 0.1
        ax.set_ylim(low - margin, high + margin)
    ax.set_xlabel(mag_name)
    ax.set_ylabel(colour_label)
    ax.set_title(f"Colour-magnitude diagram ({int(shown.sum())} objects)", fontsize=10)
    if shown.any():
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def diagram(catalog, bands, cmd_colour, red_sequence, path):
    """Draw the CMD of one colour against the redder band's AUTO magnitude; returns the
    red-sequence fit (or None) and its comment lines."""
    first, second = (cmd_colour.split("-") if cmd_colour else bands[:2])
    magnitude = catalog[f"MAG_AUTO_{second}"]
    values, errors = colour(catalog, first, second)
    stars = np.asarray(catalog["CLASS_STAR"], dtype=float) >= STAR_CLASS \
        if "CLASS_STAR" in catalog else np.zeros(catalog.nrows, dtype=bool)
    fit = fit_red_sequence(magnitude, values, ~stars, *red_sequence, errors=errors) \
        if red_sequence else None
    if red_sequence and fit is None:
        log("red sequence: fewer than 5 galaxies in the magnitude range: no fit")
    if path:
        draw_cmd(path, magnitude, f"MAG_AUTO_{second}", values, errors,
                 f"{first} - {second} (AUTO)", stars, fit, red_sequence or (0, 0))
    return fit


# --------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------

def forced_photometry(catalog, bands, diameters, weight_type, gain, back_size,
                      back_filtersize, segmap, interpolate=True):
    """Measure every band; returns (catalog with the new columns, zero point lines)."""
    apertures = catalog_apertures(catalog)
    reference, notes = None, []
    for band in bands:
        image, mask, weight = load_band(band, same_shape, catalog, reference, weight_type)
        if segmap is not None:
            same_shape(segmap, image, "segmentation map")
        reference = reference or image
        zeropoint, source = choose_zeropoint(band.zeropoint, image.header)
        columns, bkg = measure_band(image, mask, weight, weight_type, apertures, diameters,
                                    zeropoint, gain, back_size, back_filtersize,
                                    None if segmap is None else segmap.data.astype(np.int32),
                                    interpolate)
        for name, values in columns.items():
            catalog[band_column(name, band.name)] = values
        note = f"band {band.name}: zero point {zeropoint:g} ({source}), background RMS " \
               f"{bkg.globalrms:.5g}"
        log(note)
        notes.append(note)
    return catalog, notes


def add_colours(catalog, names, diameters, colour_aperture):
    for first, second in zip(names, names[1:]):
        catalog[colour_name(first, second)], catalog[colour_name(first, second, "_ERR")] = \
            colour(catalog, first, second)
        if colour_aperture is not None:
            index = diameters.index(colour_aperture)
            suffix = "" if index == 0 else f"_{index + 1}"
            values, errors = colour(catalog, first, second, "APER", suffix)
            catalog[colour_name(first, second, "_APER")] = values
            catalog[colour_name(first, second, "_APER_ERR")] = errors


def band_list(images, names, labels, zeropoints, weights, masks, weight_hdu=None):
    """The Band of every image: its name from the options, its header or its label; the
    lists of options are empty or one per image (one zero point may serve them all). With
    a weight HDU and no weight files, each image's file holds its own weight."""
    bands = []
    for index, path in enumerate(images):
        header = read_image_header(path, f"image {index + 1}")
        name = band_name(header, names[index] if names else None,
                         labels[index] if labels else None, index)
        zeropoint = None
        if zeropoints:
            zeropoint = zeropoints[index if len(zeropoints) > 1 else 0]
        weight = weights[index] if weights else (path if weight_hdu is not None else None)
        mask = masks[index] if masks else None
        bands.append(Band(name, path, zeropoint, _optional(weight, "weight"),
                          _optional(mask, "mask"), weight_hdu))
    names = [b.name for b in bands]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ToolError(f"band name(s) {', '.join(repeated)} repeat; each image needs its own "
                        "band name (give --band)")
    return bands


def _optional(path, what):
    if path in (None, "", "none", "None"):
        return None
    if not os.path.isfile(path):
        raise ToolError(f"the {what} file '{path}' not found")
    return path


def measured_formats(catalog, given, bands):
    """Text formats of the columns this tool adds: magnitudes and colours to 1e-6 mag,
    fluxes, errors and sky levels to 8 significant digits (SExtractor itself writes %8.4f
    and %12.7g); the catalog's own columns are written back exactly as they came in. The
    exact shortest text of the ~20 new columns per band took most of the writing time."""
    colours = {colour_name(first, second, suffix) for first in bands for second in bands
               for suffix in ("", "_ERR", "_APER", "_APER_ERR")}
    formats = {}
    for name in catalog:
        if name in given:
            continue
        if name.startswith("MAG") or name in colours:
            formats[name] = "%.6f"
        elif name.startswith(("FLUX", "BACKGROUND")):
            formats[name] = "%.8g"
    return formats


def main(argv=None):
    args = parse_args(argv)
    catalog = read_catalog(args.catalog, "the catalog")
    given = list(catalog)
    bands = band_list(args.image, args.band, args.label, args.zeropoint, args.weight,
                      args.mask, args.weight_hdu)
    names = [b.name for b in bands]
    if args.cmd_colour and (args.cmd_colour.count("-") != 1 or any(
            b not in names for b in args.cmd_colour.split("-"))):
        raise ToolError(f"--cmd-colour '{args.cmd_colour}': give two of the bands "
                        f"({', '.join(names)}) as FIRST-SECOND")
    if (args.cmd or args.red_sequence) and len(bands) < 2 and not args.cmd_colour:
        raise ToolError("a colour-magnitude diagram needs at least two bands")
    segmap = read_image(args.segmentation, "segmentation map") if args.segmentation else None
    log(f"{catalog.nrows} objects, {len(bands)} band(s): {', '.join(names)}")
    catalog, notes = forced_photometry(catalog, bands, args.apertures, args.weight_type,
                                       args.gain, args.back_size, args.back_filtersize, segmap,
                                       args.interp_type == "all")
    add_colours(catalog, names, args.apertures, args.colour_aperture)
    comments = notes + [f"aperture diameters (px): "
                        f"{', '.join(f'{d:g}' for d in args.apertures) or 'none'}"]
    with Outputs() as out:
        fit = None
        if args.cmd or args.red_sequence:
            fit = diagram(catalog, names, args.cmd_colour, args.red_sequence,
                          out.path(args.cmd))
        if fit is not None:
            text = (f"red sequence: colour = {fit['slope']:+.4f} x mag + "
                    f"{fit['intercept']:.4f}, scatter {fit['scatter']:.4f}, "
                    f"{fit['members']} members")
            log(text)
            comments.append(text)
            catalog["RED_SEQUENCE"] = fit["member_mask"].astype(np.int64)
        write_catalog(out.path(args.output), catalog, measured_formats(catalog, given, names),
                      comments=comments)
    for first, second in zip(names, names[1:]):
        values = catalog[colour_name(first, second)]
        if np.isfinite(values).any():
            log(f"{colour_name(first, second)}: median {np.nanmedian(values):.3f} over "
                f"{int(np.isfinite(values).sum())} objects")
    log(f"measured {catalog.nrows} objects in {len(bands)} band(s)")


if __name__ == "__main__":
    run_cli(main)
