"""Shared pieces of the source-extraction suite.

One reader for images (FITS or TIFF), one reader and one writer for catalogs, the ellipse
geometry every tool uses, and the error handling of the command-line scripts. Each script
of the suite imports this module from the same folder.
"""

import re
import sys
import traceback
import warnings

import numpy as np

# A user error: the script prints "Error: <message>" on one line and exits with this status.
USAGE_EXIT = 2
SERVICE_EXIT = 3


class ToolError(Exception):
    """Bad input or parameters; the message is shown to the user as is."""

    exit_status = USAGE_EXIT


class ServiceError(ToolError):
    """A remote service failed (network down, HTTP error, bad answer)."""

    exit_status = SERVICE_EXIT


def run_cli(main, argv=None):
    """Run main(argv) and turn failures into a one-line message and a non-zero exit."""
    # astropy's notes on non-standard header cards (old ESO keywords...) are not errors
    warnings.filterwarnings("ignore", message=".*(non-standard convention|keyword).*")
    try:
        main(argv)
    except ToolError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(err.exit_status)
    except MemoryError:
        print("Error: out of memory; try a smaller image or crop it first", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # a bug: keep the traceback, but end with a readable line
        traceback.print_exc()
        print(f"Error: unexpected failure ({type(err).__name__}: {err})", file=sys.stderr)
        sys.exit(1)


def log(message):
    """Progress and summary lines go to stdout (Galaxy shows them as the job's output)."""
    print(message, flush=True)


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# Header keys that describe a third axis, or the storage of the data, and must not be
# copied to a 2-D output image.
_NON_2D_KEY = re.compile(
    r"^(NAXIS[3-9]|(CTYPE|CRVAL|CRPIX|CDELT|CUNIT|CROTA|CNAME|CRDER|CSYER)[3-9]"
    r"|(CD|PC|PV|PS)[3-9]_\d+|(CD|PC)\d_[3-9]"
    r"|BSCALE|BZERO|BLANK|CHECKSUM|DATASUM|EXTEND|XTENSION|PCOUNT|GCOUNT|WCSAXES)$"
)


class Image:
    """A 2-D image ready for sep, with what is needed to write outputs like it.

    data: float32 or float64, native byte order, C-contiguous; pixels that were NaN or
    infinite are set to 0 and flagged in `invalid`. header: a 2-D FITS header (WCS kept)
    for output images. wcs: the celestial astropy WCS, or None.
    """

    def __init__(self, data, header, wcs, description, invalid=None):
        self.data = data
        self.header = header
        self.wcs = wcs
        self.description = description
        self.invalid = invalid

    @property
    def shape(self):
        return self.data.shape


def require_file(path, what):
    """A clear error for a missing input file (instead of a traceback)."""
    import os
    if not os.path.isfile(path):
        raise ToolError(f"{what}: file '{path}' not found")


def sniff_image_format(path, what="image"):
    """Return 'fits' or 'tiff' from the file's first bytes; refuse anything else."""
    require_file(path, f"the {what}")
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head[:4] in TIFF_MAGIC:
        return "tiff"
    if not head:
        raise ToolError(f"the {what} file is empty")
    lowered = head.lower()
    if b"<html" in lowered or b"<!doctype" in lowered:
        raise ToolError(
            f"the {what} is an HTML page, not a FITS or TIFF image "
            "(probably an error page saved by a failed download)")
    raise ToolError(f"the {what} is neither a FITS nor a TIFF file")


def read_image(path, what="image", hdu=None, plane=None, band=None):
    """Read a 2-D image from a FITS or TIFF file.

    hdu: FITS HDU index (default: the first HDU holding an image). plane (0-based) or
    band (matched against BAND0, BAND1, ... header keys) select one plane of a 3-D cube
    or of a multi-channel TIFF.
    """
    kind = sniff_image_format(path, what)
    if kind == "fits":
        raw, header, description = _read_fits_array(path, what, hdu)
        raw, header, description = _select_plane(raw, header, plane, band, what, description)
        header = header_2d(header)
    else:
        if hdu is not None:
            raise ToolError(f"the {what} is a TIFF file: HDU numbers apply only to FITS")
        raw, description = _read_tiff_array(path, what, plane)
        header = None
    data, invalid = _as_sep_array(raw, what)
    if header is None:
        from astropy.io import fits
        header = fits.Header()
    wcs = celestial_wcs(header)
    return Image(data, header, wcs, description, invalid)


def add_image_arguments(parser, help_text="FITS or TIFF image"):
    """--image and the choice of HDU and plane, as every script takes them."""
    parser.add_argument("--image", required=True, help=help_text)
    parser.add_argument("--hdu", type=int, help="FITS HDU (default: first HDU with an image)")
    plane = parser.add_mutually_exclusive_group()
    plane.add_argument("--plane", type=int, help="plane of a 3-D cube or TIFF (0-based)")
    plane.add_argument("--band", help="plane of a cube by band name (BAND0, BAND1... keys)")


def read_image_argument(args):
    """The image chosen by add_image_arguments' options."""
    return read_image(args.image, "image", hdu=args.hdu, plane=args.plane, band=args.band)


def _read_fits_array(path, what, hdu):
    from astropy.io import fits
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                if hdu is None:
                    candidates = [i for i, h in enumerate(hdul)
                                  if h.is_image and h.header.get("NAXIS", 0) >= 1]
                    if not candidates:
                        raise ToolError(f"the {what} FITS file holds no image data")
                    index = candidates[0]
                else:
                    if not 0 <= hdu < len(hdul):
                        raise ToolError(
                            f"the {what} has {len(hdul)} HDU(s) (0..{len(hdul) - 1}); "
                            f"HDU {hdu} does not exist")
                    index = hdu
                    if not hdul[index].is_image or hdul[index].data is None:
                        raise ToolError(f"HDU {hdu} of the {what} holds no image data")
                data = np.asarray(hdul[index].data)
                header = hdul[index].header.copy()
    except ToolError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise ToolError(f"the {what} is not a readable FITS file ({err})") from None
    return data, header, f"FITS HDU {index}"


def _read_tiff_array(path, what, plane):
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
    except Exception as err:
        raise ToolError(f"the {what} is not a readable TIFF file ({err})") from None
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4) and axes.endswith("S"):
        kind = "RGB" if data.shape[-1] == 3 else "RGBA"
        if plane is None:
            raise ToolError(
                f"the {what} is an {kind} TIFF; use a single-channel (grey) image, "
                "or choose a channel with the plane parameter (0 = red)")
        data = np.moveaxis(data, -1, 0)
    data = _squeeze_to(data, 3)
    if data.ndim == 3:
        data = _pick_plane(data, plane, what, f"TIFF with {data.shape[0]} planes")
        return data, f"TIFF plane {plane}"
    if data.ndim != 2:
        raise ToolError(f"the {what} has {data.ndim} dimension(s); a 2-D image is needed")
    if plane not in (None, 0):
        raise ToolError(f"the {what} is a 2-D image: there is no plane {plane}")
    return data, "TIFF"


def _squeeze_to(data, ndim):
    """Drop leading axes of length 1 until the array has at most ndim dimensions."""
    while data.ndim > ndim and data.shape[0] == 1:
        data = data[0]
    return data


def _pick_plane(cube, plane, what, description):
    if plane is None:
        raise ToolError(
            f"the {what} is a 3-D {description}; choose one plane (0-based) or a band")
    if not 0 <= plane < cube.shape[0]:
        raise ToolError(f"the {what} has planes 0..{cube.shape[0] - 1}; plane {plane} "
                        "does not exist")
    return cube[plane]


def cube_bands(header, nplanes):
    """Band names of a cube's planes from BAND0, BAND1, ... (or BANDS='grz')."""
    bands = [str(header.get(f"BAND{i}", "")).strip() for i in range(nplanes)]
    if not all(bands) and len(str(header.get("BANDS", ""))) == nplanes:
        bands = list(str(header["BANDS"]))
    return bands


def _select_plane(data, header, plane, band, what, description):
    data = _squeeze_to(data, 3)
    if data.ndim == 2:
        if plane not in (None, 0) or band:
            band_here = str(header.get("BAND", "")).strip()
            if band and band == band_here:
                return data, header, description
            raise ToolError(f"the {what} is a 2-D image: there is no plane or band to choose")
        return data, header, description
    if data.ndim != 3:
        raise ToolError(f"the {what} has {data.ndim} dimension(s); a 2-D image is needed")
    bands = cube_bands(header, data.shape[0])
    if band:
        if band not in bands:
            known = ", ".join(b for b in bands if b) or "none named in the header"
            raise ToolError(f"band '{band}' is not in the {what} (bands: {known})")
        plane = bands.index(band)
    listing = ", ".join(f"{i}={b}" for i, b in enumerate(bands) if b)
    kind = f"cube with {data.shape[0]} planes" + (f" ({listing})" if listing else "")
    data = _pick_plane(data, plane, what, kind)
    header = header.copy()
    for key in ["BANDS"] + [f"BAND{i}" for i in range(len(bands))]:
        header.remove(key, ignore_missing=True)
    if bands[plane]:
        header["BAND"] = (bands[plane], "band of this plane of the cube")
    return data, header, f"{description} plane {plane}"


def header_2d(header):
    """A copy of a FITS header without the keys of a third axis or of the data's storage."""
    header = header.copy()
    for key in list(header.keys()):
        if _NON_2D_KEY.match(key):
            del header[key]
    header["NAXIS"] = 2
    return header


def celestial_wcs(header):
    """The celestial WCS of a 2-D header, or None when it has none (or a broken one)."""
    if not header or "CTYPE1" not in header:
        return None
    from astropy.wcs import WCS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
    except Exception:
        return None
    return wcs if wcs.has_celestial else None


def _as_sep_array(raw, what):
    """Convert to a native-endian float array; NaN/inf pixels become 0 and are flagged."""
    if raw.ndim != 2:
        raise ToolError(f"the {what} has {raw.ndim} dimension(s); a 2-D image is needed")
    if min(raw.shape) < 2:
        raise ToolError(f"the {what} is {raw.shape[1]} x {raw.shape[0]} pixels: too small")
    if raw.dtype.kind not in "biuf":
        raise ToolError(f"the {what} has pixels of type {raw.dtype}; numbers are needed")
    # float32 like SExtractor, unless the data need more precision
    wide = raw.dtype.itemsize > (4 if raw.dtype.kind == "f" else 2)
    dtype = np.float64 if wide else np.float32
    data = np.ascontiguousarray(raw, dtype=dtype)  # also converts big-endian FITS data
    invalid = ~np.isfinite(data)
    if invalid.all():
        raise ToolError(f"every pixel of the {what} is NaN or infinite")
    if invalid.any():
        data[invalid] = 0.0
        return data, invalid
    return data, None


def write_fits_image(path, data, header=None):
    """Write a 2-D array as the primary HDU, with the given header's WCS and keys."""
    from astropy.io import fits
    hdu = fits.PrimaryHDU(np.ascontiguousarray(data), header=header_2d(header) if header else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.writeto(path, overwrite=True, output_verify="silentfix")


def mask_from_image(path, shape, threshold=0.0, what="mask"):
    """A boolean mask (True = masked) from a FITS/TIFF image: pixels > threshold, or NaN."""
    image = read_image(path, what=what)
    if image.shape != shape:
        raise ToolError(f"the {what} is {image.shape[1]} x {image.shape[0]} pixels but the "
                        f"image is {shape[1]} x {shape[0]}; they must have the same shape")
    masked = image.data > threshold
    if image.invalid is not None:
        masked |= image.invalid
    return masked


# --------------------------------------------------------------------------------------
# Catalogs
# --------------------------------------------------------------------------------------

# CluSex's header-less catalogs hold these 15 columns in this order.
CLUSEX_COLUMNS = (
    "NUMBER", "ALPHA_J2000", "DELTA_J2000", "XPEAK_IMAGE", "YPEAK_IMAGE", "MAG_BEST",
    "KRON_RADIUS", "FLUX_RADIUS", "ISOAREA_IMAGE", "A_IMAGE", "ELLIPTICITY", "THETA_IMAGE",
    "BACKGROUND", "CLASS_STAR", "FLAGS",
)
INTEGER_COLUMNS = {"NUMBER", "FLAGS", "ISOAREA_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE",
                   "SKY_NPIX", "SOURCE"}
# How many decimals a column is written with (SExtractor's own choices where it has one).
COLUMN_FORMATS = {
    "X_IMAGE": "%.4f", "Y_IMAGE": "%.4f", "ALPHA_J2000": "%.7f", "DELTA_J2000": "%.7f",
    "A_IMAGE": "%.4f", "B_IMAGE": "%.4f", "THETA_IMAGE": "%.3f", "ELLIPTICITY": "%.4f",
    "KRON_RADIUS": "%.3f", "FLUX_RADIUS": "%.4f", "MAG_AUTO": "%.4f", "MAG_BEST": "%.4f",
    "CLASS_STAR": "%.3f", "SKY_RADIUS": "%.2f",
}
_SEXTRACTOR_HEAD = re.compile(r"^#\s+(\d+)\s+([A-Za-z_][A-Za-z0-9_]*)")


class Catalog(dict):
    """A catalog: column name -> 1-D numpy array, all of one length, in file order."""

    @property
    def nrows(self):
        return len(next(iter(self.values()))) if self else 0

    def require(self, names, what="the catalog"):
        missing = [name for name in names if name not in self]
        if missing:
            raise ToolError(f"{what} lacks the column(s) {', '.join(missing)} "
                            f"(it has: {', '.join(self) or 'none'})")

    def take(self, index):
        """A new catalog with the rows selected by an index array or boolean mask."""
        return Catalog((name, values[index]) for name, values in self.items())


def write_catalog(path, catalog):
    """Write a tab-separated catalog; the first line is '#' and the column names."""
    names = list(catalog)
    formats = [_column_format(name, catalog[name]) for name in names]
    with open(path, "w") as handle:
        handle.write("#" + "\t".join(names) + "\n")
        if catalog.nrows:
            columns = [np.asarray(catalog[name]) for name in names]
            row_format = "\t".join(formats) + "\n"
            handle.writelines(row_format % row for row in zip(*(c.tolist() for c in columns)))


def _column_format(name, values):
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return "%d"
    if name in INTEGER_COLUMNS and np.all(values == np.round(values)):
        return "%.0f"  # whole numbers stored as floats (NaN is written as nan)
    return COLUMN_FORMATS.get(name, "%.7g")


def read_catalog(path, what="the catalog"):
    """Read any catalog the suite knows.

    - this suite's tab-separated catalog (first line '#' and the column names);
    - a SExtractor ASCII_HEAD catalog ('#   1 NUMBER ...' lines; vector columns such as
      FLUX_RADIUS(3) become FLUX_RADIUS, FLUX_RADIUS_2, FLUX_RADIUS_3);
    - CluSex's header-less 15-column catalog;
    - a FITS binary table (SExtractor FITS_1.0 or astropy).
    """
    require_file(path, what)
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head.startswith(b"SIMPLE  ="):
        return _read_fits_catalog(path, what)
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except UnicodeDecodeError:
        raise ToolError(f"{what} is not a text catalog (binary data)") from None
    header = [line for line in lines if line.startswith("#")]
    rows = [(number, line) for number, line in enumerate(lines, 1)
            if line.strip() and not line.startswith("#")]
    numbered = [_SEXTRACTOR_HEAD.match(line) for line in header]
    if numbered and all(numbered):
        names = _expand_sextractor_names([(int(m.group(1)), m.group(2)) for m in numbered],
                                         rows, what)
    elif header:
        names = header[0].lstrip("#").strip().split("\t" if "\t" in header[0] else None)
    elif rows:
        ncol = len(rows[0][1].split())
        if ncol != len(CLUSEX_COLUMNS):
            raise ToolError(
                f"{what} has no header line and {ncol} columns; a header of column names "
                f"(or CluSex's {len(CLUSEX_COLUMNS)} header-less columns) is needed")
        names = list(CLUSEX_COLUMNS)
    else:
        raise ToolError(f"{what} is empty: no header and no rows")
    return _parse_rows(names, rows, what)


def _expand_sextractor_names(numbered, rows, what):
    ncol = len(rows[0][1].split()) if rows else numbered[-1][0]
    names = []
    for (start, name), nxt in zip(numbered, numbered[1:] + [(ncol + 1, None)]):
        width = nxt[0] - start
        names.append(name)
        names.extend(f"{name}_{k}" for k in range(2, width + 1))
    return names


def _parse_rows(names, rows, what):
    if len(set(names)) != len(names):
        raise ToolError(f"{what} has repeated column names")
    table = np.empty((len(rows), len(names)), dtype=float)
    for i, (number, line) in enumerate(rows):
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) != len(names):
            raise ToolError(f"{what}: line {number} has {len(fields)} values but the header "
                            f"names {len(names)} columns")
        try:
            table[i] = [float(field) if field.strip() else np.nan for field in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise ToolError(f"{what}: line {number} has a non-numeric value '{bad.strip()}'")
    return _typed_catalog(names, table.T)


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return not text.strip()
    return True


def _typed_catalog(names, columns):
    catalog = Catalog()
    for name, values in zip(names, columns):
        values = np.asarray(values, dtype=float)
        if name in INTEGER_COLUMNS and np.all(np.isfinite(values)) and \
                np.all(values == np.round(values)):
            values = values.astype(np.int64)
        catalog[name] = values
    return catalog


def _read_fits_catalog(path, what):
    from astropy.table import Table
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = Table.read(path, hdu=_first_table_hdu(path, what))
    except ToolError:
        raise
    except Exception as err:
        raise ToolError(f"{what} is not a readable FITS table ({err})") from None
    names, columns = [], []
    for name in table.colnames:
        values = np.asarray(table[name])
        if values.dtype.kind not in "biuf":
            continue
        if values.ndim == 2:
            for k in range(values.shape[1]):
                names.append(name if k == 0 else f"{name}_{k + 1}")
                columns.append(values[:, k])
        else:
            names.append(name)
            columns.append(values)
    return _typed_catalog(names, columns)


def _first_table_hdu(path, what):
    from astropy.io import fits
    with fits.open(path) as hdul:
        for index, hdu in enumerate(hdul):
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)) and hdu.name != "LDAC_IMHEAD":
                return index
    raise ToolError(f"{what} is a FITS file without a table")


# --------------------------------------------------------------------------------------
# Ellipse geometry (pixel coordinates are 1-based, angles in degrees CCW from +x)
# --------------------------------------------------------------------------------------

def minor_axis_ratio(catalog):
    """b/a of each object: 1 - ELLIPTICITY (CluSex's choice), else B_IMAGE/A_IMAGE."""
    if "ELLIPTICITY" in catalog:
        return 1.0 - np.asarray(catalog["ELLIPTICITY"], dtype=float)
    catalog.require(["A_IMAGE", "B_IMAGE"])
    a = np.asarray(catalog["A_IMAGE"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, catalog["B_IMAGE"] / a, 1.0)


def ellipse_axes(catalog, kind="sextractor", k=6.0, scale=1.0, offset=0.0):
    """Semi-axes (px) and angle (deg) of each object's ellipse.

    kind 'sextractor': k x (A_IMAGE, B_IMAGE), as SExtractor's check images draw them.
    kind 'clusex': the Kron ellipse of CluSex, R = scale x KRON_RADIUS x A_IMAGE + offset
    and b = R x (1 - ELLIPTICITY).
    """
    catalog.require(["A_IMAGE", "THETA_IMAGE"])
    ratio = minor_axis_ratio(catalog)
    if kind == "sextractor":
        major = k * np.asarray(catalog["A_IMAGE"], dtype=float)
    elif kind == "clusex":
        catalog.require(["KRON_RADIUS"])
        major = scale * catalog["KRON_RADIUS"] * catalog["A_IMAGE"] + offset
    else:
        raise ValueError(f"unknown ellipse kind {kind!r}")
    return major, major * ratio, np.asarray(catalog["THETA_IMAGE"], dtype=float)


def ellipse_centres(catalog, peak=False):
    """1-based centres: the barycentre (X_IMAGE, Y_IMAGE) or the peak pixel."""
    names = ("XPEAK_IMAGE", "YPEAK_IMAGE") if peak else ("X_IMAGE", "Y_IMAGE")
    if not peak and names[0] not in catalog and "XPEAK_IMAGE" in catalog:
        names = ("XPEAK_IMAGE", "YPEAK_IMAGE")
    catalog.require(names)
    return (np.asarray(catalog[names[0]], dtype=float),
            np.asarray(catalog[names[1]], dtype=float))


def ellipse_bounds(major, minor, theta_deg):
    """Half-widths (hx, hy) of the axis-aligned box around each ellipse."""
    phi = np.radians(theta_deg)
    hx = np.sqrt((major * np.cos(phi)) ** 2 + (minor * np.sin(phi)) ** 2)
    hy = np.sqrt((major * np.sin(phi)) ** 2 + (minor * np.cos(phi)) ** 2)
    return hx, hy


def box_pixels(x_lo, x_hi, y_lo, y_hi, limit=20_000_000):
    """Every pixel of many boxes [x_lo, x_hi) x [y_lo, y_hi) at once, as (owner, x, y)
    arrays (owner = the box's index), in chunks of about `limit` pixels."""
    width = np.maximum(np.asarray(x_hi) - x_lo, 0)
    height = np.maximum(np.asarray(y_hi) - y_lo, 0)
    sizes = width * height
    ends = np.cumsum(sizes)
    start = 0
    while start < len(sizes):
        done = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, done + limit, side="right")), start + 1)
        boxes = np.arange(start, stop)
        counts = sizes[boxes]
        owner = np.repeat(boxes, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        yield owner, x_lo[owner] + within % width[owner], y_lo[owner] + within // width[owner]
        start = stop


def inside_ellipses(px, py, cx, cy, major, minor, theta_deg):
    """Strict point-in-ellipse test, element by element (all arrays of one length).

    True where (u/major)^2 + (v/minor)^2 < 1, with (u, v) the point's offset from the
    centre rotated by -theta. Degenerate ellipses (an axis <= 0) contain nothing.
    """
    phi = np.radians(theta_deg)
    dx, dy = px - cx, py - cy
    u = dx * np.cos(phi) + dy * np.sin(phi)
    v = -dx * np.sin(phi) + dy * np.cos(phi)
    valid = (major > 0) & (minor > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = (u / major) ** 2 + (v / minor) ** 2 < 1.0
    return valid & inside


# --------------------------------------------------------------------------------------
# ds9 region files
# --------------------------------------------------------------------------------------

REGION_HEADER = (
    "# Region file format: DS9 version 4.1\n"
    'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" select=1 '
    "highlite=1 dash=0 fixed=0 edit=1 move=1 delete=1 include=1 source=1\n")
REGION_SHAPES = {"box": 5, "ellipse": 5, "circle": 3, "polygon": None, "point": 2}
REGION_SYSTEMS = ("image", "physical", "fk5", "icrs", "galactic", "ecliptic", "fk4", "j2000",
                  "wcs", "linear", "amplifier", "detector")


class Region:
    """One ds9 shape in image coordinates (1-based pixels, angles in degrees)."""

    def __init__(self, shape, params, line, properties=""):
        self.shape = shape
        self.params = params
        self.line = line
        self.properties = properties

    def __repr__(self):
        return f"Region({self.shape}, {self.params})"


def write_regions(path, lines, system="image"):
    """Write a ds9 region file: the standard header, the coordinate system, the shapes."""
    with open(path, "w") as handle:
        handle.write(REGION_HEADER)
        handle.write(system + "\n")
        handle.writelines(line + "\n" for line in lines)


def ellipse_region_lines(x, y, major, minor, theta, colours, texts=None, unit=""):
    """ds9 `ellipse` lines (semi-axes, angle in degrees); colours and texts per row.
    With a unit ('"' for arcsec) the centre is RA, Dec in degrees, written to 1e-7 deg."""
    texts = texts if texts is not None else [None] * len(x)
    fmt = ".7f" if unit else ".7g"
    rows = zip(*(np.asarray(v, dtype=float).tolist() for v in (x, y, major, minor, theta)),
               colours, texts)
    return [f"ellipse({xi:{fmt}},{yi:{fmt}},{a:.4f}{unit},{b:.4f}{unit},{t:.3f}) # color={c}"
            + (f" text={{{label}}}" if label is not None else "")
            for xi, yi, a, b, t, c, label in rows]


def read_regions(path, what="the region file"):
    """Read a ds9 region file in image (or physical) coordinates.

    Shapes: box, ellipse, circle, polygon (and point, kept as a marker). Any other shape,
    another coordinate system, or a malformed line is an error naming the line.
    """
    require_file(path, what)
    regions = []
    system = "image"
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, 1):
            text = raw.strip()
            if not text or text.startswith("#") or text.startswith("global"):
                continue
            for part in [p.strip() for p in text.split(";") if p.strip()]:
                body, _, properties = part.partition("#")
                body = body.strip()
                if body.lower() in REGION_SYSTEMS:
                    system = body.lower()
                    continue
                regions.append(_parse_region(body, properties, number, system, what))
    return regions


def _parse_region(body, properties, number, system, what):
    match = re.match(r"^([+-]?)\s*([A-Za-z]+)\s*\((.*)\)$", body)
    if not match:
        raise ToolError(f"{what}, line {number}: '{body[:50]}' is not a ds9 shape")
    if match.group(1) == "-":
        raise ToolError(f"{what}, line {number}: exclusion regions ('-{match.group(2)}') "
                        "are not supported")
    shape = match.group(2).lower()
    if shape not in REGION_SHAPES:
        raise ToolError(f"{what}, line {number}: unknown shape '{shape}' (supported: "
                        f"{', '.join(REGION_SHAPES)})")
    if system not in ("image", "physical"):
        raise ToolError(f"{what}, line {number}: coordinates are '{system}'; save the "
                        "regions in image coordinates")
    try:
        params = [float(p.strip().rstrip('"').rstrip("'")) for p in match.group(3).split(",")]
    except ValueError:
        raise ToolError(f"{what}, line {number}: '{body[:50]}' has a non-numeric "
                        "parameter") from None
    expected = REGION_SHAPES[shape]
    if shape in ("box", "ellipse") and len(params) == 4:
        params.append(0.0)  # no angle given
    if expected is not None and len(params) != expected or \
            shape == "polygon" and (len(params) < 6 or len(params) % 2):
        raise ToolError(f"{what}, line {number}: {shape} has {len(params)} parameters")
    return Region(shape, params, number, properties.strip())


SOURCE_COLOURS = {1: "red", 2: "blue", 3: "green", 4: "magenta", 5: "cyan"}


def catalog_region_lines(catalog, scale=1.0, offset=0.0, coords="image", pixel_scale=None):
    """ds9 lines for a catalog's CluSex ellipses (R = scale x KRON_RADIUS x A + offset,
    R <= 0 -> 1 px; b = R x B/A), centred on the peak pixel, angle THETA_IMAGE; colour by
    SOURCE (red 1, blue 2, ...), the NUMBER as text; saturated objects (FLAGS bit 4) also
    get a red point. coords 'fk5' uses ALPHA/DELTA_J2000 and sizes in arcsec (pixel_scale,
    arcsec/px), assuming north up, east left as the angle's reference."""
    major, _, theta = ellipse_axes(catalog, "clusex", scale=scale, offset=offset)
    major = np.where(major > 0, major, 1.0)
    minor = major * minor_axis_ratio(catalog)
    x, y = ellipse_centres(catalog, peak=True)
    unit = ""
    if coords == "fk5":
        catalog.require(["ALPHA_J2000", "DELTA_J2000"], "the catalog (for fk5 regions)")
        x, y = catalog["ALPHA_J2000"], catalog["DELTA_J2000"]
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ToolError("the catalog has no sky positions (ALPHA_J2000/DELTA_J2000 are "
                            "NaN: the image had no WCS); use image coordinates")
        major, minor, unit = major * pixel_scale, minor * pixel_scale, '"'
    source = catalog["SOURCE"] if "SOURCE" in catalog else np.ones(catalog.nrows, dtype=int)
    colours = [SOURCE_COLOURS.get(int(s), "green") for s in source]
    numbers = catalog["NUMBER"] if "NUMBER" in catalog else np.arange(1, catalog.nrows + 1)
    lines = ellipse_region_lines(x, y, major, minor, theta, colours,
                                 [int(n) for n in numbers], unit=unit)
    if "FLAGS" in catalog:
        flags = np.nan_to_num(np.asarray(catalog["FLAGS"], dtype=float)).astype(np.int64)
        lines += [f"point({x[i]:.7g},{y[i]:.7g}) # point=boxcircle color=red"
                  for i in np.flatnonzero(flags & 4)]
    return lines
