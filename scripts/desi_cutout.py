#!/usr/bin/env python
"""Fetch DESI Legacy Surveys cutouts: one 2-D FITS image per band (WCS, BUNIT, MAGZP) and a
colour JPEG, for one sky position or for every row of a catalog. With --invvar and
--maskbits each band's file also holds the service's inverse-variance plane (HDU 1,
EXTNAME INVVAR) and the brick's MASKBITS plane (HDU 2, EXTNAME MASKBITS), the way DES
coadds carry SCI, WGT and MSK: sep_extract takes them with --weight-hdu INVVAR and
--flag-hdu MASKBITS (or 'auto').

The service is https://www.legacysurvey.org/viewer (its fits-cutout and jpeg-cutout
endpoints); the environment variable DESI_LEGACY_BASE_URL points the tool elsewhere.
Exit status 2: bad parameters; 3: the service failed or gave an unusable answer.
"""

import http.client
import io
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import Catalog, read_catalog, write_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    between, log, new_parser, non_negative_float, Outputs, positive_float, run_cli,
    ServiceError, ToolError,
)
from astro_ellipses import kron_size  # noqa: E402

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
# the service adds inverse-variance and maskbits planes only below twice the native scale
MAX_PLANES_PIXSCALE = 2 * NATIVE_PIXSCALE
# Legacy Surveys MASKBITS (legacysurvey.org/dr10/bitmasks): bit number, name, meaning
MASKBITS = (
    (0, "NPRIMARY", "outside the brick's primary region"),
    (1, "BRIGHT", "near a bright star (Tycho-2, Gaia G < 13)"),
    (2, "SATUR_G", "saturated in a g image"), (3, "SATUR_R", "saturated in an r image"),
    (4, "SATUR_Z", "saturated in a z image"),
    (5, "ALLMASK_G", "bad in every g image"), (6, "ALLMASK_R", "bad in every r image"),
    (7, "ALLMASK_Z", "bad in every z image"),
    (8, "WISEM1", "WISE W1 bright star mask"), (9, "WISEM2", "WISE W2 bright star mask"),
    (10, "BAILOUT", "no further sources fit in the blob"),
    (11, "MEDIUM", "near a medium-bright star (Gaia G < 16)"),
    (12, "GALAXY", "in a large galaxy (SGA)"), (13, "CLUSTER", "in a globular cluster"),
    (14, "SATUR_I", "saturated in an i image (DR10)"),
    (15, "ALLMASK_I", "bad in every i image (DR10)"),
)
RETRIES = 3
READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class CutoutRequest:
    """What to ask the service for at each position."""

    layer: str = "ls-dr10"
    bands: str = "griz"
    pixscale: float = NATIVE_PIXSCALE
    fits: bool = True
    jpeg: bool = False
    invvar: bool = False      # add each band's inverse-variance plane (HDU INVVAR)
    maskbits: bool = False    # add the MASKBITS plane (HDU MASKBITS)


@dataclass(frozen=True)
class StampTable:
    """Table mode: one stamp per row of a catalog."""

    path: str
    ra_column: str = "ALPHA_J2000"
    dec_column: str = "DELTA_J2000"
    id_column: str = "NUMBER"
    max_rows: int = 100
    max_class_star: float = None   # only rows with CLASS_STAR below this
    stamp_scale: float = 4.0       # stamp side = this x KRON_RADIUS x A_IMAGE
    table_pixscale: float = NATIVE_PIXSCALE


def parse_args(argv=None):
    parser = new_parser(__doc__)
    where = parser.add_argument_group("position (or a table of positions)")
    where.add_argument("--ra", help="RA: decimal degrees, or sexagesimal hours 10:21:33.2")
    where.add_argument("--dec", help="Dec: decimal degrees, or sexagesimal +12:03:11")
    where.add_argument("--table", help="catalog with one position per row (table mode)")
    where.add_argument("--ra-column", default="ALPHA_J2000")
    where.add_argument("--dec-column", default="DELTA_J2000")
    where.add_argument("--id-column", default="NUMBER",
                       help="names the stamps (default NUMBER; else the row number)")
    where.add_argument("--max-class-star", type=between(0, 1),
                       help="table mode: only rows with CLASS_STAR below this (galaxies; "
                            "CluSex's desisexcat cut)")
    where.add_argument("--max-rows", type=int, default=100,
                       help=f"refuse tables with more rows (default 100, at most {MAX_STAMPS})")
    size = parser.add_argument_group("cutout")
    size.add_argument("--size", type=int, default=256, help="square size in pixels")
    size.add_argument("--width", type=int)
    size.add_argument("--height", type=int)
    size.add_argument("--pixscale", type=between(0, 60, unit=" arcsec"), default=NATIVE_PIXSCALE,
                      help="arcsec per pixel (default 0.262, the survey's own)")
    size.add_argument("--layer", default="ls-dr10", choices=sorted(LAYER_BANDS))
    size.add_argument("--bands", default=None, help="e.g. grz (default: all of the layer's)")
    size.add_argument("--stamp-scale", type=non_negative_float, default=4.0,
                      help="table mode: stamp side = this x KRON_RADIUS x A_IMAGE (catalog "
                           "pixels of --table-pixscale) when the catalog has them (default 4: "
                           "twice the Kron ellipse); 0 = --size for every stamp")
    size.add_argument("--table-pixscale", type=positive_float, default=NATIVE_PIXSCALE,
                      help="arcsec per pixel of the catalog's sizes (default 0.262)")
    out = parser.add_argument_group("output")
    out.add_argument("--fits", action="store_true", help="FITS images, one per band")
    out.add_argument("--jpeg", action="store_true", help="colour JPEG")
    out.add_argument("--invvar", action="store_true",
                     help="add each band's inverse-variance plane to its FITS file (HDU 1, "
                          "INVVAR; pixel scales below 0.524 only)")
    out.add_argument("--maskbits", action="store_true",
                     help="add the Legacy Surveys MASKBITS plane to each FITS file (HDU "
                          "MASKBITS; pixel scales below 0.524 only)")
    out.add_argument("--output-dir", required=True)
    out.add_argument("--summary", help="table mode: a table of every row (ID, RA, DEC, SIDE, "
                                       "STATUS ok/failed, FILES, MESSAGE)")
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
    if args.pixscale == 0:
        raise ToolError("--pixscale must be between 0 and 60 arcsec (got 0.0)")
    valid = LAYER_BANDS[args.layer]
    args.bands = args.bands or valid
    wrong = sorted(set(args.bands) - set(valid))
    if wrong or len(set(args.bands)) != len(args.bands) or not args.bands:
        raise ToolError(f"bands '{args.bands}' are not valid for layer {args.layer} "
                        f"(valid: {', '.join(valid)}, each once)")
    if (args.invvar or args.maskbits) and not args.fits:
        raise ToolError("--invvar and --maskbits add planes to the FITS images: ask for --fits")
    if (args.invvar or args.maskbits) and args.pixscale >= MAX_PLANES_PIXSCALE:
        raise ToolError(f"the service gives inverse-variance and maskbits planes only at pixel "
                        f"scales below {MAX_PLANES_PIXSCALE:g}\" (got {args.pixscale:g}); "
                        "ask for a finer scale or leave them out")
    if not 1 <= args.max_rows <= MAX_STAMPS:
        raise ToolError(f"--max-rows must be between 1 and {MAX_STAMPS}")


def parse_position(ra_text, dec_text):
    """(ra, dec) in degrees; each coordinate on its own in decimal degrees or sexagesimal
    (RA in hours: 10:21:33.2 or 10h21m33.2s; Dec in degrees: +12:03:11)."""
    position = f"{ra_text} {dec_text}"
    ra = _coordinate(ra_text, "RA", True, position)
    dec = _coordinate(dec_text, "Dec", False, position)
    if not (0 <= ra < 360 and -90 <= dec <= 90):
        raise ToolError(f"position RA {ra}, Dec {dec} is out of range (0 <= RA < 360, "
                        "-90 <= Dec <= 90)")
    return ra, dec


def _coordinate(text, name, hours, position):
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not math.isfinite(value):
            raise ToolError(f"{name} '{text}' is not a finite number")
        return value
    from astropy import units as u
    from astropy.coordinates import Angle
    try:
        angle = Angle(text, unit=u.hourangle if hours else u.deg)
    except Exception:
        example = "10:21:33.2" if hours else "+12:03:11"
        raise ToolError(f"cannot read the position '{position}': the {name} '{text}' is "
                        f"neither decimal degrees nor sexagesimal ('{example}')") from None
    return float(angle.deg)


def base_url():
    return os.environ.get("DESI_LEGACY_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def request_url(kind, ra, dec, width, height, request):
    query = {"ra": f"{ra:.7f}", "dec": f"{dec:.7f}", "layer": request.layer,
             "pixscale": f"{request.pixscale:g}"}
    if width == height:
        query["size"] = width
    else:
        query["width"], query["height"] = width, height
    if kind == "fits":
        query["bands"] = request.bands
        # the service reads these flags by their presence
        query.update({name: "" for name in ("invvar", "maskbits") if getattr(request, name)})
    return f"{base_url()}/{kind}-cutout?{urllib.parse.urlencode(query)}"


def read_answer(answer, deadline):
    """The whole body, in chunks, within a total deadline (a server that drips a byte a
    second never ends a read by itself)."""
    parts, size = [], 0
    promised = answer.headers.get("Content-Length")
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not finish in time")
        part = answer.read1(READ_CHUNK)  # what has arrived, not a full chunk
        if not part:
            break
        parts.append(part)
        size += len(part)
    body = b"".join(parts)
    if promised is not None and promised.isdigit() and size < int(promised):
        raise http.client.IncompleteRead(body, int(promised) - size)
    return body


def fetch(url):
    """GET with a timeout per read, a total deadline per request and retries (backoff) on
    timeouts, dropped connections, broken answers and 5xx. Returns (content type, body);
    raises ServiceError with the service's reason."""
    timeout = float(os.environ.get("DESI_LEGACY_TIMEOUT", "120"))
    total = float(os.environ.get("DESI_LEGACY_DEADLINE", str(3 * timeout)))
    delay = float(os.environ.get("DESI_LEGACY_RETRY_DELAY", "2"))
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    problem = None
    for attempt in range(1, RETRIES + 1):
        try:
            deadline = time.monotonic() + total
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.headers.get("Content-Type", ""), read_answer(answer, deadline)
        except urllib.error.HTTPError as err:
            if err.code < 500:
                raise ServiceError(f"the Legacy Surveys service refused the request (HTTP "
                                   f"{err.code}: {err.reason}) for {url}") from None
            problem = f"HTTP {err.code} ({err.reason})"
        except http.client.IncompleteRead as err:
            problem = f"the answer was cut off after {len(err.partial)} bytes"
        except http.client.HTTPException as err:
            detail = " ".join(str(err).split())[:60]
            problem = f"a broken answer ({type(err).__name__}: {detail})"
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


def read_fits_answer(body, request):
    """The service's FITS answer: {'image': (nbands, ny, nx) cube, 'invvar': a cube of the
    same shape or None, 'maskbits': (ny, nx) int32 or None} and the image's header. The
    service writes the image cube first, then (asked for) the inverse variance, then the
    maskbits plane, each HDU with IMAGETYP saying what it is."""
    from astropy.io import fits
    if not body.strip():
        raise ServiceError("the service answered with an empty body instead of a FITS image")
    if not body.startswith(b"SIMPLE"):
        # the hint only where the service's text speaks of the layer
        hint = f" (unknown layer '{request.layer}'?)" if b"layer" in body[:500].lower() else ""
        raise ServiceError(f"the service answered with text, not a FITS image: "
                           f"'{text_answer(body)}'{hint}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(io.BytesIO(body)) as hdul:
                planes = [(str(h.header.get("IMAGETYP", "")).strip().upper(),
                           None if h.data is None else np.array(h.data)) for h in hdul]
                header = hdul[0].header.copy()
    except Exception as err:
        raise ServiceError(f"the service's FITS answer is unreadable ({err})") from None
    data = planes[0][1]
    if data is None or data.ndim not in (2, 3):
        raise ServiceError("the service's FITS answer holds no image")
    cube = as_cube(data.astype(np.float32), request, "image")
    finite = np.isfinite(cube)
    if not finite.any() or np.all(cube[finite] == 0):
        raise ServiceError("the cutout is blank (all zero or NaN): the position is outside "
                           f"the {request.layer} footprint")
    answer = {"image": cube, "invvar": None, "maskbits": None}
    extra = dict(planes[1:])
    if request.invvar:
        if extra.get("INVVAR") is None:
            raise ServiceError("the service sent no inverse-variance plane (it has none for "
                               f"layer {request.layer} at {request.pixscale:g}\"/px)")
        answer["invvar"] = as_cube(extra["INVVAR"].astype(np.float32), request, "invvar")
    if request.maskbits:
        bits = extra.get("MASKBITS")
        if bits is None or bits.ndim != 2 or bits.dtype.kind not in "iu":
            raise ServiceError("the service sent no integer maskbits plane (it has none for "
                               f"layer {request.layer} at {request.pixscale:g}\"/px)")
        answer["maskbits"] = bits.astype(np.int32)
    for name in ("invvar", "maskbits"):
        plane = answer[name]
        if plane is not None and plane.shape[-2:] != cube.shape[-2:]:
            raise ServiceError(f"the service's {name} plane is {plane.shape[-1]} x "
                               f"{plane.shape[-2]} pixels, the image {cube.shape[-1]} x "
                               f"{cube.shape[-2]}")
    return answer, header


def as_cube(data, request, what):
    """A (nbands, ny, nx) cube of the service's plane(s), one per asked band."""
    cube = data[None] if data.ndim == 2 else data
    if cube.ndim != 3 or len(cube) != len(request.bands):
        whose = "" if what == "image" else f"'s {what}"
        raise ServiceError(f"asked for bands {request.bands} but the answer{whose} has "
                           f"{len(cube) if cube.ndim == 3 else 0} plane(s)")
    return cube


def band_header(header, band, plane, url, request):
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
    zeropoint = AB_ZEROPOINT - 5.0 * math.log10(request.pixscale / NATIVE_PIXSCALE)
    out["BAND"] = (band, "filter band of this image")
    out["BUNIT"] = ("nanomaggy", "1 nanomaggy = 3.631e-6 Jy (AB mag 22.5)")
    out["MAGZP"] = (round(zeropoint, 6), "AB zero point per pixel for this pixel scale")
    out["LAYER"] = (request.layer, "Legacy Surveys layer")
    out["PIXSCALE"] = (request.pixscale, "arcsec per pixel of the cutout")
    out["CUTPLANE"] = (plane, "plane of the service's cube")
    for index in range(0, len(url), 60):  # the request, in pieces that fit in cards
        out[f"SRCURL{index // 60 + 1}"] = url[index:index + 60]
    return out


def save_fits(answer, header, url, request, output_dir, prefix=""):
    """One file per band: the image (primary HDU), then its INVVAR and the MASKBITS HDUs
    when they were asked for, each with the band's WCS."""
    from astropy.io import fits
    names = []
    for plane, band in enumerate(request.bands):
        name = f"{prefix}{band}.fits"
        image_header = band_header(header, band, plane, url, request)
        hdus = [fits.PrimaryHDU(answer["image"][plane], image_header)]
        if answer["invvar"] is not None:
            hdus.append(fits.ImageHDU(answer["invvar"][plane],
                                      plane_header(image_header, "INVVAR"), name="INVVAR"))
        if answer["maskbits"] is not None:
            hdus.append(fits.ImageHDU(answer["maskbits"],
                                      plane_header(image_header, "MASKBITS"), name="MASKBITS"))
        fits.HDUList(hdus).writeto(os.path.join(output_dir, name), overwrite=True)
        names.append(name)
    return names


def plane_header(image_header, kind):
    """The header of an INVVAR or MASKBITS HDU: the image's WCS and what the plane is."""
    header = image_header.copy()
    for key in ("MAGZP", "SRCURL1", "SRCURL2", "SRCURL3", "SRCURL4"):
        header.remove(key, ignore_missing=True)
    header["IMAGETYP"] = kind
    if kind == "INVVAR":
        header["BUNIT"] = ("nanomaggy-2", "inverse variance of the image's pixels")
        header["COMMENT"] = "inverse variance: sep_extract --weight-type map_weight"
        return header
    header.remove("BUNIT", ignore_missing=True)
    header["COMMENT"] = "Legacy Surveys MASKBITS of the brick (the same for every band):"
    for bit, name, meaning in MASKBITS:
        header["COMMENT"] = f"bit {bit:2d} (value {1 << bit:5d}) {name}: {meaning}"
    return header


def checked_jpeg(body):
    """The service's JPEG answer, checked to be a real, non-blank picture."""
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
    return body


def write_jpeg(body, output_dir, name):
    with open(os.path.join(output_dir, name), "wb") as handle:
        handle.write(body)
    return name


def save_jpeg(body, output_dir, name):
    return write_jpeg(checked_jpeg(body), output_dir, name)


def cutout(ra, dec, width, height, request, output_dir, prefix=""):
    """Fetch and write one position's products; returns the file names written. Every
    answer is fetched and checked before the first file is written."""
    products = []
    if request.fits:
        url = request_url("fits", ra, dec, width, height, request)
        log(f"fetching {url}")
        _, body = fetch(url)
        products.append(("fits", url, read_fits_answer(body, request)))
    if request.jpeg:
        url = request_url("jpeg", ra, dec, width, height, request)
        log(f"fetching {url}")
        _, body = fetch(url)
        products.append(("jpeg", url, checked_jpeg(body)))
    written = []
    for kind, url, answer in products:
        if kind == "fits":
            written += save_fits(*answer, url, request, output_dir, prefix)
        else:
            written.append(write_jpeg(answer, output_dir, f"{prefix}color.jpg"))
    return written


def table_positions(table, size, pixscale):
    """(id, ra, dec, side) for every row of the table; ids are unique whole numbers."""
    catalog = read_catalog(table.path, "the table")
    catalog.require([table.ra_column, table.dec_column], "the table")
    if table.max_class_star is not None:
        keep = catalog.floats("CLASS_STAR", "the table", finite=False) < table.max_class_star
        log(f"CLASS_STAR below {table.max_class_star:g}: {int(keep.sum())} of "
            f"{catalog.nrows} rows")
        catalog = catalog.take(keep)
    if catalog.nrows > table.max_rows:
        raise ToolError(f"the table has {catalog.nrows} rows, more than the {table.max_rows} "
                        "stamps allowed; select fewer rows or raise the limit "
                        f"(at most {MAX_STAMPS})")
    ra = catalog.floats(table.ra_column, "the table", finite=False)
    dec = catalog.floats(table.dec_column, "the table", finite=False)
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360) & (np.abs(dec) <= 90))
    if bad.any():
        raise ToolError(f"the table's row {int(np.flatnonzero(bad)[0]) + 1} has no valid "
                        f"position in {table.ra_column}/{table.dec_column} (an image without "
                        "WCS gives NaN)")
    ids = stamp_ids(catalog, table.id_column)
    sides = np.full(catalog.nrows, size)
    if table.stamp_scale > 0 and "KRON_RADIUS" in catalog and "A_IMAGE" in catalog:
        size_px = table.stamp_scale * kron_size(catalog, "the table") \
            * table.table_pixscale / pixscale
        sides = np.clip(np.ceil(size_px), 32, MAX_SIZE).astype(int)
    return [(int(i), float(r), float(d), int(s)) for i, r, d, s in zip(ids, ra, dec, sides)]


def stamp_ids(catalog, column):
    """The id of each stamp: the column's whole numbers when they are unique, else the row
    number (two stamps never share a file name)."""
    rows = np.arange(1, catalog.nrows + 1)
    if column not in catalog:
        return rows
    values = catalog.floats(column, "the table", finite=False)
    whole = np.isfinite(values) & (values == np.round(values)) & (values >= 0)
    if whole.all() and len(np.unique(values)) == len(values):
        return values.astype(np.int64)
    log(f"the table's {column} values are not unique whole numbers: stamps are named by "
        "row number")
    return rows


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    width = args.width or args.size
    height = args.height or args.size
    request = CutoutRequest(args.layer, args.bands, args.pixscale, args.fits, args.jpeg,
                            args.invvar, args.maskbits)
    if args.table is None:
        ra, dec = parse_position(args.ra, args.dec)
        names = cutout(ra, dec, width, height, request, args.output_dir)
        extras = [name.upper() for name in ("invvar", "maskbits") if getattr(request, name)]
        planes = f" (with {' and '.join(extras)} HDUs)" if extras else ""
        log(f"RA {ra:.6f}, Dec {dec:+.6f}, {width} x {height} pixels of {args.pixscale:g}\", "
            f"layer {args.layer}: wrote {', '.join(names)}{planes}")
        return
    table = StampTable(args.table, args.ra_column, args.dec_column, args.id_column,
                       args.max_rows, args.max_class_star, args.stamp_scale,
                       args.table_pixscale)
    positions = table_positions(table, args.size, args.pixscale)
    rows = stamps(positions, request, args.output_dir)
    failed = [row for row in rows if row[4] == "failed"]
    if args.summary:
        with Outputs() as out:
            write_catalog(out.path(args.summary), summary_catalog(rows))
    note = f"; {len(failed)} failed (see the summary)" if failed else ""
    log(f"wrote stamps of {len(rows) - len(failed)} objects ({args.layer}, "
        f"{args.pixscale:g}\"/px){note}")
    if failed and len(failed) == len(rows):
        raise ServiceError(f"every stamp failed; the first: {failed[0][6]}")


def stamps(positions, request, output_dir):
    """Fetch every row's stamp; a row the service fails on is a 'failed' row of the
    summary, not the end of the job. Rows: (id, ra, dec, side, status, files, message)."""
    rows = []
    for number, ra, dec, side in positions:
        try:
            names = cutout(ra, dec, side, side, request, output_dir,
                           prefix=f"stamp_{number:05d}_")
            rows.append((number, ra, dec, side, "ok", ",".join(names), "-"))
        except ServiceError as err:
            log(f"stamp {number} failed: {err}")
            rows.append((number, ra, dec, side, "failed", "-", str(err).replace("\t", " ")))
    return rows


def summary_catalog(rows):
    columns = list(zip(*rows)) if rows else [[]] * 7
    return Catalog([("ID", np.array(columns[0], dtype=np.int64)),
                    ("RA", np.array(columns[1], dtype=float)),
                    ("DEC", np.array(columns[2], dtype=float)),
                    ("SIDE", np.array(columns[3], dtype=np.int64)),
                    ("STATUS", np.array(columns[4], dtype=str)),
                    ("FILES", np.array(columns[5], dtype=str)),
                    ("MESSAGE", np.array(columns[6], dtype=str))])


if __name__ == "__main__":
    run_cli(main)
