#!/usr/bin/env python
"""Fetch DESI Legacy Surveys cutouts: one 2-D FITS image per band (WCS, BUNIT, MAGZP) and a
colour JPEG, for one sky position or for every row of a catalog.

The service is https://www.legacysurvey.org/viewer (its fits-cutout and jpeg-cutout
endpoints); the environment variable DESI_LEGACY_BASE_URL points the tool elsewhere.
Exit status 2: bad parameters; 3: the service failed or gave an unusable answer.
"""

import argparse
import io
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_common import (  # noqa: E402
    log, read_catalog, run_cli, ServiceError, ToolError,
)

__version__ = "0.1.0"
DEFAULT_BASE_URL = "https://www.legacysurvey.org/viewer"
USER_AGENT = f"galaxy-astro-desi-cutout/{__version__} (Galaxy tool desi_cutout)"
LAYER_BANDS = {
    "ls-dr10": "griz", "ls-dr10-south": "griz", "ls-dr9": "grz", "ls-dr9-north": "grz",
    "ls-dr9-south": "grz",
}
NATIVE_PIXSCALE = 0.262   # arcsec / pixel
AB_ZEROPOINT = 22.5       # nanomaggies
MAX_SIZE = 3000           # the service silently clamps larger cutouts
MAX_STAMPS = 1000
RETRIES = 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_argument_group("position (or a table of positions)")
    where.add_argument("--ra", help="RA: decimal degrees, or sexagesimal hours 10:21:33.2")
    where.add_argument("--dec", help="Dec: decimal degrees, or sexagesimal +12:03:11")
    where.add_argument("--table", help="catalog with one position per row (table mode)")
    where.add_argument("--ra-column", default="ALPHA_J2000")
    where.add_argument("--dec-column", default="DELTA_J2000")
    where.add_argument("--id-column", default="NUMBER",
                       help="names the stamps (default NUMBER; else the row number)")
    where.add_argument("--max-rows", type=int, default=100,
                       help=f"refuse tables with more rows (default 100, at most {MAX_STAMPS})")
    size = parser.add_argument_group("cutout")
    size.add_argument("--size", type=int, default=256, help="square size in pixels")
    size.add_argument("--width", type=int)
    size.add_argument("--height", type=int)
    size.add_argument("--pixscale", type=float, default=NATIVE_PIXSCALE,
                      help="arcsec per pixel (default 0.262, the survey's own)")
    size.add_argument("--layer", default="ls-dr10", choices=sorted(LAYER_BANDS))
    size.add_argument("--bands", default=None, help="e.g. grz (default: all of the layer's)")
    size.add_argument("--stamp-scale", type=float, default=4.0,
                      help="table mode: stamp side = this x KRON_RADIUS x A_IMAGE (catalog "
                           "pixels of --table-pixscale) when the catalog has them (default 4: "
                           "twice the Kron ellipse); 0 = --size for every stamp")
    size.add_argument("--table-pixscale", type=float, default=NATIVE_PIXSCALE,
                      help="arcsec per pixel of the catalog's sizes (default 0.262)")
    out = parser.add_argument_group("output")
    out.add_argument("--fits", action="store_true", help="FITS images, one per band")
    out.add_argument("--jpeg", action="store_true", help="colour JPEG")
    out.add_argument("--output-dir", required=True)
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args):
    if not args.fits and not args.jpeg:
        args.fits = True
    if args.table is None and (args.ra is None or args.dec is None):
        raise ToolError("give --ra and --dec, or a --table of positions")
    if args.table is not None and (args.ra is not None or args.dec is not None):
        raise ToolError("give either --ra/--dec or --table, not both")
    if (args.width is None) != (args.height is None):
        raise ToolError("give both --width and --height (or --size)")
    for name, value in (("size", args.size), ("width", args.width), ("height", args.height)):
        if value is not None and not 1 <= value <= MAX_SIZE:
            raise ToolError(f"--{name} must be between 1 and {MAX_SIZE} pixels (got {value}); "
                            f"the service would silently cut it to {MAX_SIZE}")
    if not 0 < args.pixscale <= 60:
        raise ToolError(f"--pixscale must be between 0 and 60 arcsec (got {args.pixscale})")
    valid = LAYER_BANDS[args.layer]
    args.bands = args.bands or valid
    wrong = sorted(set(args.bands) - set(valid))
    if wrong or len(set(args.bands)) != len(args.bands) or not args.bands:
        raise ToolError(f"bands '{args.bands}' are not valid for layer {args.layer} "
                        f"(valid: {', '.join(valid)}, each once)")
    if not 1 <= args.max_rows <= MAX_STAMPS:
        raise ToolError(f"--max-rows must be between 1 and {MAX_STAMPS}")


def parse_position(ra_text, dec_text):
    """(ra, dec) in degrees from decimal degrees or sexagesimal (RA in hours)."""
    try:
        ra, dec = float(ra_text), float(dec_text)
    except ValueError:
        from astropy import units as u
        from astropy.coordinates import SkyCoord
        try:
            coord = SkyCoord(ra_text, dec_text, unit=(u.hourangle, u.deg))
        except Exception:
            raise ToolError(f"cannot read the position '{ra_text} {dec_text}': use decimal "
                            "degrees or sexagesimal '10:21:33.2 +12:03:11'") from None
        ra, dec = float(coord.ra.deg), float(coord.dec.deg)
    if not (0 <= ra < 360 and -90 <= dec <= 90):
        raise ToolError(f"position RA {ra}, Dec {dec} is out of range (0 <= RA < 360, "
                        "-90 <= Dec <= 90)")
    return ra, dec


def base_url():
    return os.environ.get("DESI_LEGACY_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def request_url(kind, ra, dec, width, height, args):
    query = {"ra": f"{ra:.7f}", "dec": f"{dec:.7f}", "layer": args.layer,
             "pixscale": f"{args.pixscale:g}"}
    if width == height:
        query["size"] = width
    else:
        query["width"], query["height"] = width, height
    if kind == "fits":
        query["bands"] = args.bands
    return f"{base_url()}/{kind}-cutout?{urllib.parse.urlencode(query)}"


def fetch(url):
    """GET with a timeout and retries (backoff) on timeouts, connection errors and 5xx.
    Returns (content type, body); raises ServiceError with the service's reason."""
    timeout = float(os.environ.get("DESI_LEGACY_TIMEOUT", "120"))
    delay = float(os.environ.get("DESI_LEGACY_RETRY_DELAY", "2"))
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    problem = None
    for attempt in range(1, RETRIES + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.headers.get("Content-Type", ""), answer.read()
        except urllib.error.HTTPError as err:
            if err.code < 500:
                raise ServiceError(f"the Legacy Surveys service refused the request (HTTP "
                                   f"{err.code}: {err.reason}) for {url}") from None
            problem = f"HTTP {err.code} ({err.reason})"
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            problem = f"no answer ({reason})"
        if attempt < RETRIES:
            log(f"attempt {attempt} failed: {problem}; retrying in {delay:g} s")
            time.sleep(delay)
            delay *= 2
    hint = ("; the position may be outside the survey footprint"
            if problem and problem.startswith("HTTP 500") else "")
    raise ServiceError(f"the Legacy Surveys service failed {RETRIES} times: {problem}{hint}")


def text_answer(body):
    snippet = body[:200].decode("utf-8", errors="replace").strip().splitlines()
    return snippet[0][:100] if snippet else ""


def read_fits_answer(body, args):
    """The service's FITS answer as a (nbands, ny, nx) cube and its header."""
    from astropy.io import fits
    if not body.startswith(b"SIMPLE"):
        raise ServiceError(f"the service answered with text, not a FITS image: "
                           f"'{text_answer(body)}' (unknown layer '{args.layer}'?)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(body)) as hdul:
                data = None if hdul[0].data is None else np.array(hdul[0].data, dtype=np.float32)
                header = hdul[0].header.copy()
    except Exception as err:
        raise ServiceError(f"the service's FITS answer is unreadable ({err})") from None
    if data is None or data.ndim not in (2, 3):
        raise ServiceError("the service's FITS answer holds no image")
    cube = data[None] if data.ndim == 2 else data
    if len(cube) != len(args.bands):
        raise ServiceError(f"asked for bands {args.bands} but the answer has {len(cube)} "
                           "plane(s)")
    finite = np.isfinite(cube)
    if not finite.any() or np.all(cube[finite] == 0):
        raise ServiceError("the cutout is blank (all zero or NaN): the position is outside "
                           f"the {args.layer} footprint")
    return cube, header


def band_header(header, band, plane, url, args):
    """A 2-D header for one band: the celestial WCS, units, zero point and the request."""
    from astropy.io import fits
    from astropy.wcs import WCS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = WCS(header).celestial
    out = fits.Header()
    out.update(wcs.to_header())
    for key in ("SURVEY", "VERSION", "IMAGETYP"):
        if key in header:
            out[key] = header[key]
    zeropoint = AB_ZEROPOINT - 5.0 * math.log10(args.pixscale / NATIVE_PIXSCALE)
    out["BAND"] = (band, "filter band of this image")
    out["BUNIT"] = ("nanomaggy", "1 nanomaggy = 3.631e-6 Jy (AB mag 22.5)")
    out["MAGZP"] = (round(zeropoint, 6), "AB zero point per pixel for this pixel scale")
    out["LAYER"] = (args.layer, "Legacy Surveys layer")
    out["PIXSCALE"] = (args.pixscale, "arcsec per pixel of the cutout")
    out["CUTPLANE"] = (plane, "plane of the service's cube")
    for index in range(0, len(url), 60):  # the request, in pieces that fit in cards
        out[f"SRCURL{index // 60 + 1}"] = url[index:index + 60]
    return out


def save_fits(cube, header, url, args, output_dir, prefix=""):
    from astropy.io import fits
    names = []
    for plane, band in enumerate(args.bands):
        name = f"{prefix}{band}.fits"
        hdu = fits.PrimaryHDU(cube[plane], band_header(header, band, plane, url, args))
        hdu.writeto(os.path.join(output_dir, name), overwrite=True)
        names.append(name)
    return names


def save_jpeg(body, output_dir, name):
    from PIL import Image
    if not body.startswith(b"\xff\xd8"):
        raise ServiceError(f"the service answered with something that is not a JPEG: "
                           f"'{text_answer(body)}'")
    try:
        picture = np.asarray(Image.open(io.BytesIO(body)))
    except Exception as err:
        raise ServiceError(f"the service's JPEG is unreadable ({err})") from None
    if picture.std() == 0:
        raise ServiceError("the colour image is blank: the position is outside the survey "
                           "footprint")
    with open(os.path.join(output_dir, name), "wb") as handle:
        handle.write(body)
    return name


def cutout(ra, dec, width, height, args, output_dir, prefix=""):
    """Fetch and write one position's products; returns the file names written."""
    written = []
    if args.fits:
        url = request_url("fits", ra, dec, width, height, args)
        log(f"fetching {url}")
        _, body = fetch(url)
        cube, header = read_fits_answer(body, args)
        written += save_fits(cube, header, url, args, output_dir, prefix)
    if args.jpeg:
        url = request_url("jpeg", ra, dec, width, height, args)
        log(f"fetching {url}")
        _, body = fetch(url)
        written.append(save_jpeg(body, output_dir, f"{prefix}color.jpg"))
    return written


def table_positions(args):
    """(id, ra, dec, side) for every row of the table."""
    catalog = read_catalog(args.table, "the table")
    catalog.require([args.ra_column, args.dec_column], "the table")
    if catalog.nrows == 0:
        raise ToolError("the table has no rows")
    if catalog.nrows > args.max_rows:
        raise ToolError(f"the table has {catalog.nrows} rows, more than the {args.max_rows} "
                        "stamps allowed; select fewer rows or raise the limit "
                        f"(at most {MAX_STAMPS})")
    ra, dec = catalog[args.ra_column], catalog[args.dec_column]
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (np.abs(dec) <= 90))
    if bad.any():
        raise ToolError(f"the table's row {int(np.flatnonzero(bad)[0]) + 1} has no valid "
                        f"position in {args.ra_column}/{args.dec_column} (an image without "
                        "WCS gives NaN)")
    ids = catalog[args.id_column] if args.id_column in catalog else \
        np.arange(1, catalog.nrows + 1)
    sides = np.full(catalog.nrows, args.size)
    if args.stamp_scale > 0 and "KRON_RADIUS" in catalog and "A_IMAGE" in catalog:
        size_px = args.stamp_scale * catalog["KRON_RADIUS"] * catalog["A_IMAGE"] \
            * args.table_pixscale / args.pixscale
        sides = np.clip(np.ceil(size_px), 32, MAX_SIZE).astype(int)
    return [(int(i), float(r), float(d), int(s)) for i, r, d, s in zip(ids, ra, dec, sides)]


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    width = args.width or args.size
    height = args.height or args.size
    if args.table is None:
        ra, dec = parse_position(args.ra, args.dec)
        names = cutout(ra, dec, width, height, args, args.output_dir)
        log(f"RA {ra:.6f}, Dec {dec:+.6f}, {width} x {height} pixels of {args.pixscale:g}\", "
            f"layer {args.layer}: wrote {', '.join(names)}")
        return
    positions = table_positions(args)
    for number, ra, dec, side in positions:
        cutout(ra, dec, side, side, args, args.output_dir, prefix=f"stamp_{number:05d}_")
    log(f"wrote stamps of {len(positions)} objects ({args.layer}, {args.pixscale:g}\"/px)")


if __name__ == "__main__":
    run_cli(main)
