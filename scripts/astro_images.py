"""The suite's one image reader (FITS or TIFF), its FITS writer, and masks from images.

An Image is 2-D, float32 (or float64 when the data need it), native byte order, with NaN
and infinite pixels set to 0 and flagged. Real survey files are read as they come: gzip'ed
or bzip2'ed FITS, tile-compressed HDUs, duplicated keywords (DES coadds carry CHECKSUM and
DATASUM twice), cards astropy cannot parse, length-1 axes.
"""

import re
import warnings

import numpy as np

from astro_common import require_file, ToolError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh")  # gzip, bzip2: astropy opens both
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


def sniff_image_format(path, what="image"):
    """Return 'fits' or 'tiff' from the file's first bytes; refuse anything else."""
    require_file(path, f"the {what}")
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(COMPRESSED_MAGIC):
        return _sniff_compressed(path, head, what)
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


def _sniff_compressed(path, head, what):
    """'fits' for a gzip'ed or bzip2'ed FITS file; an error for anything else."""
    import bz2
    import gzip
    opener = gzip.open if head.startswith(b"\x1f\x8b") else bz2.open
    try:
        with opener(path, "rb") as handle:
            inner = handle.read(9)
    except (OSError, EOFError) as err:
        raise ToolError(f"the {what} is a damaged compressed file ({err})") from None
    if inner.startswith(b"SIMPLE  ="):
        return "fits"
    raise ToolError(f"the {what} is a compressed file that holds no FITS image")


def read_image(path, what="image", hdu=None, plane=None, band=None):
    """Read a 2-D image from a FITS or TIFF file.

    hdu: FITS HDU index or EXTNAME (default: the first HDU holding an image). plane
    (0-based) or band (matched against BAND0, BAND1, ... header keys) select one plane of a
    3-D cube or of a multi-channel TIFF.
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
    parser.add_argument("--hdu", type=hdu_argument,
                        help="FITS HDU, number or name (default: first HDU with an image)")
    plane = parser.add_mutually_exclusive_group()
    plane.add_argument("--plane", type=int, help="plane of a 3-D cube or TIFF (0-based)")
    plane.add_argument("--band", help="plane of a cube by band name (BAND0, BAND1... keys)")


def read_image_header(path, what="image", hdu=None):
    """The header of the HDU read_image would read, without reading the pixels (a TIFF
    has an empty one)."""
    from astropy.io import fits
    if sniff_image_format(path, what) != "fits":
        return fits.Header()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path) as hdul:
                if hdu is None:
                    hdu = next((i for i, h in enumerate(hdul)
                                if h.is_image and h.header.get("NAXIS", 0) >= 1), 0)
                return _clean_header(hdul[_hdu_index(hdul, hdu, what)].header)
    except (OSError, ValueError, TypeError) as err:
        raise ToolError(f"the {what} is not a readable FITS file ({err})") from None


def read_image_argument(args):
    """The image chosen by add_image_arguments' options (main's helper)."""
    return read_image(args.image, "image", hdu=args.hdu, plane=args.plane, band=args.band)


def header_number(header, keys):
    """The first of the header keys present with a finite numeric value, as (value, key).
    A card astropy cannot parse (MAGZP = 25.0.1) is skipped, never a crash."""
    for key in keys:
        try:
            value = header.get(key)
        except Exception:  # astropy's VerifyError and friends on a broken card
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and np.isfinite(value):
            return float(value), key
    return None, None


def pixel_scale_of(image):
    """Arcsec per pixel from the celestial WCS, or from CDELT/CD even when CTYPE is blank
    (as SExtractor takes it); None when the header has neither."""
    if image.wcs is not None:
        from astropy.wcs.utils import proj_plane_pixel_scales
        return float(np.sqrt(np.prod(proj_plane_pixel_scales(image.wcs)))) * 3600.0
    keys = ("CD1_1", "CD1_2", "CD2_1", "CD2_2")
    cd = [header_number(image.header, (key,))[0] for key in keys]
    cdelt = [header_number(image.header, (key,))[0] for key in ("CDELT1", "CDELT2")]
    scale = None
    if all(v is not None for v in cd):
        scale = float(np.sqrt(abs(cd[0] * cd[3] - cd[1] * cd[2]))) * 3600.0
    elif all(v is not None for v in cdelt):
        scale = float(np.sqrt(abs(cdelt[0] * cdelt[1]))) * 3600.0
    # a CDELT of 1 without a sky axis type is a pixel-unit placeholder, not 3600"/px
    return scale if scale is not None and 1e-3 < scale < 100.0 else None


def physical_offset(header):
    """(LTV1, LTV2): a ds9 'physical' position plus this is the image pixel (IRAF's LTV)."""
    return tuple(header_number(header, (key,))[0] or 0.0 for key in ("LTV1", "LTV2"))


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
                    index = _hdu_index(hdul, hdu, what)
                    if not hdul[index].is_image or hdul[index].data is None:
                        raise ToolError(f"HDU {hdu} of the {what} holds no image data")
                data = np.asarray(hdul[index].data)
                header = _clean_header(hdul[index].header)
    except ToolError:
        raise
    except (OSError, ValueError, TypeError) as err:
        raise ToolError(f"the {what} is not a readable FITS file ({err})") from None
    return data, header, f"FITS HDU {index}"


def hdu_argument(text):
    """argparse type of an HDU option: a number (0 = primary) or an EXTNAME such as WGT."""
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", text):
        return text.upper()
    import argparse
    raise argparse.ArgumentTypeError(f"'{text}' is neither an HDU number (0, 1, ...) nor an "
                                     "HDU name (EXTNAME, such as WGT or INVVAR)")


def plane_hdu_argument(text):
    """argparse type of a weight or flag plane's HDU: a number, a name, or 'auto' (the
    first HDU with a weight or flag name, see astro_weights.choose_hdu)."""
    return "auto" if str(text).strip().lower() == "auto" else hdu_argument(text)


def _hdu_index(hdul, hdu, what):
    """The index of an HDU given by number or by EXTNAME (case does not matter)."""
    if isinstance(hdu, str):
        names = [h.name.upper() for h in hdul]
        if hdu.upper() not in names:
            listed = ", ".join(f"{i}={n}" for i, n in enumerate(names) if n) or "none"
            raise ToolError(f"the {what} has no HDU named {hdu} (named HDUs: {listed})")
        return names.index(hdu.upper())
    if not 0 <= hdu < len(hdul):
        raise ToolError(f"the {what} has {len(hdul)} HDU(s) (0..{len(hdul) - 1}); HDU {hdu} "
                        "does not exist")
    return hdu


def named_image_hdu(path, names, what="image"):
    """The first HDU of a FITS file whose EXTNAME or IMAGETYP is one of `names` and which
    holds an image, as (index, name); (None, None) when there is none (or not a FITS)."""
    from astropy.io import fits
    if sniff_image_format(path, what) != "fits":
        return None, None
    wanted = [name.upper() for name in names]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path) as hdul:
                for index, hdu in enumerate(hdul):
                    if not hdu.is_image or hdu.header.get("NAXIS", 0) < 2:
                        continue
                    for key in ("EXTNAME", "IMAGETYP"):
                        value = str(hdu.header.get(key, "")).strip().upper()
                        if value in wanted:
                            return index, value
    except (OSError, ValueError, TypeError) as err:
        raise ToolError(f"the {what} is not a readable FITS file ({err})") from None
    return None, None


def require_same_shape(image, shape, what):
    """Refuse an image (or an array) whose shape is not the science image's."""
    have = image.shape
    if tuple(have) != tuple(shape):
        raise ToolError(f"the {what} is {have[1]} x {have[0]} pixels but the image is "
                        f"{shape[1]} x {shape[0]}; they must have the same shape")


def _clean_header(header):
    """A copy of the header whose every card can be read: a card astropy cannot parse
    (MAGZP = 25.0.1) is dropped and a COMMENT keeps its text."""
    header = header.copy()
    broken = []
    for index, card in enumerate(header.cards):
        try:
            card.value
        except Exception:  # astropy's VerifyError on an unparsable card
            broken.append(index)
    for index in reversed(broken):
        text = header.cards[index].image.strip()[:60]
        del header[index]
        header.add_comment(f"unreadable card dropped: {text}")
    return header


def _read_tiff_array(path, what, plane):
    import tifffile
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
    except Exception as err:
        hint = " (its compression needs the imagecodecs package)" \
            if "imagecodecs" in str(err) else ""
        raise ToolError(f"the {what} is not a readable TIFF file ({err}){hint}") from None
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] == 2 and axes.endswith("S") and plane is None:
        # grey + alpha: the grey channel is the image (the alpha channel is transparency)
        return data[..., 0], "TIFF grey channel (its alpha channel left aside)"
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
    if plane is None and data.shape[0] == 1:  # a cube of one plane (radio 1 x 1 x ny x nx)
        plane = 0
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
    for key in set(header.keys()):
        if _NON_2D_KEY.match(key):
            # remove_all: real files repeat keys (CHECKSUM and DATASUM twice in DES coadds)
            header.remove(key, ignore_missing=True, remove_all=True)
    header["NAXIS"] = 2
    return header


def celestial_wcs(header):
    """The celestial WCS of a 2-D header, or None when it has none (or a broken one)."""
    if not header or not _celestial_type(header.get("CTYPE1")):
        return None
    from astropy.wcs import WCS  # 0.1 s of imports: only for a header that has a sky WCS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header, naxis=2)
    except Exception:
        return None
    return wcs if wcs.has_celestial else None


def _celestial_type(ctype):
    """True for a sky axis type: RA---TAN, DEC--TPV, GLON-CAR, ELAT, HPLN..."""
    if not isinstance(ctype, str):
        return False
    axis = ctype.strip().upper().split("-")[0]
    return axis in ("RA", "DEC") or (len(axis) == 4 and axis[2:] in ("LN", "LT", "ON", "AT"))


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
    require_same_shape(image, shape, what)
    masked = image.data > threshold
    if image.invalid is not None:
        masked |= image.invalid
    return masked
