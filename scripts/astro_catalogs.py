"""The suite's one catalog reader and writer.

Reads this suite's tab-separated tables, SExtractor ASCII_HEAD catalogs, CluSex's
header-less 15 columns and FITS tables. Nothing is lost on the way through a tool: columns
of whole numbers stay integers (a 19-digit OBJID included), text columns stay text, and
floating-point columns a tool did not compute are written with as many digits as it takes
to read back the same number (RA/Dec to the last bit, MJD with its fraction).
"""

import re
import warnings

import numpy as np

from astro_common import require_file, ToolError

# CluSex's header-less catalogs hold these 15 columns in this order.
CLUSEX_COLUMNS = (
    "NUMBER", "ALPHA_J2000", "DELTA_J2000", "XPEAK_IMAGE", "YPEAK_IMAGE", "MAG_BEST",
    "KRON_RADIUS", "FLUX_RADIUS", "ISOAREA_IMAGE", "A_IMAGE", "ELLIPTICITY", "THETA_IMAGE",
    "BACKGROUND", "CLASS_STAR", "FLAGS",
)
# Columns that hold whole numbers by nature; whole numbers stored as floats (because a
# value is missing) are written without decimals.
INTEGER_COLUMNS = {"NUMBER", "FLAGS", "ISOAREA_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE",
                   "SKY_NPIX", "SOURCE", "SKY_FLAG", "IMAFLAGS_ISO", "NIMAFLAGS_ISO",
                   "FLAGS_WEIGHT"}
# Columns that are measurements (floats) even when a file writes them as "2"; tools
# compute with them in place.
FLOAT_COLUMNS = {"X_IMAGE", "Y_IMAGE", "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELLIPTICITY",
                 "KRON_RADIUS", "FLUX_RADIUS", "BACKGROUND", "ALPHA_J2000", "DELTA_J2000",
                 "MAG_BEST", "MAG_AUTO", "FLUX_AUTO", "FLUX_ISO", "CLASS_STAR"}
_SEXTRACTOR_HEAD = re.compile(r"^#\s+(\d+)\s+([A-Za-z_][A-Za-z0-9_]*)")


class Catalog(dict):
    """A catalog: column name -> 1-D numpy array, all of one length, in file order.

    lines: the file line of each row (for messages), or None for a computed catalog.
    Each numeric column read from a text file remembers its text: while the column is the
    very array that was read (or taken from it by take), it is written back as that text.
    """

    lines = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._text = {}

    def remember_text(self, name, text):
        self._text[name] = (self[name], text)

    def text_of(self, name):
        """The column's original text, if the column is still the array it was read as."""
        values, text = self._text.get(name, (None, None))
        return text if values is not None and self.get(name) is values else None

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
        taken = Catalog((name, values[index]) for name, values in self.items())
        if self.lines is not None:
            taken.lines = np.asarray(self.lines)[index]
        for name in self:
            text = self.text_of(name)
            if text is not None:
                taken.remember_text(name, text[index])
        return taken

    def insert_before(self, before, name, values):
        """Add a column just before another one (at the end when that one is missing)."""
        items = list(self.items())
        position = next((i for i, (n, _) in enumerate(items) if n == before), len(items))
        items.insert(position, (name, values))
        self.clear()
        self.update(items)

    def row_name(self, row):
        """'line 7' of the file, or 'row 3' of a computed catalog, for messages."""
        if self.lines is not None:
            return f"line {int(self.lines[row])}"
        return f"row {row + 1}"

    def floats(self, name, what="the catalog", finite=True):
        """A column as float64; a text value, or (finite=True) NaN or infinity, is an
        error naming the line and the column."""
        self.require([name], what)
        values = self[name]
        if values.dtype.kind in "US":  # numbers kept as text, or real text
            numeric = [_is_number(text) for text in values]
            if not all(numeric):
                bad = numeric.index(False)
                raise ToolError(f"{what}: {self.row_name(bad)} has a non-numeric value "
                                f"'{values[bad].strip()}' in {name}")
            values = np.where(values == "", "nan", values)
        values = np.asarray(values, dtype=float)
        if finite and not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ToolError(f"{what}: {self.row_name(bad)} has a NaN or infinite {name} "
                            f"({values[bad]}); fix or remove that row")
        return values


def stack_catalogs(first, second):
    """The rows of `first`, then those of `second`, in first's columns (a column second
    lacks gets NaN): every value kept exactly, and read text kept as it was."""
    joined = Catalog()
    for name, values in first.items():
        other = second[name] if name in second else None
        joined[name] = stack_missing(values, second.nrows) if other is None \
            else stack_columns(values, other)
        text = first.text_of(name)
        if text is not None and joined[name].dtype.kind == "f":
            rest = np.full(second.nrows, "nan") if other is None else second.text_of(name)
            if rest is None:
                rest = np.array(_column_text(name, np.asarray(other, dtype=float), None))
            joined.remember_text(name, np.concatenate([text, rest]))
    return joined


def stack_columns(first, second):
    """One column: the rows of `first`, then those of `second`, every value kept exactly
    (integers stay integers where both are; they become text rather than lose digits)."""
    return _stack(np.asarray(first), np.asarray(second))


def stack_missing(first, count):
    """Column `first` followed by `count` missing values (NaN, or 'nan' for text)."""
    return _stack(np.asarray(first), np.full(count, np.nan))


def _stack(first, second):
    kinds = {first.dtype.kind, second.dtype.kind}
    if kinds <= set("iub"):
        return np.concatenate([first, second]).astype(np.int64)
    exact_as_float = all(_floats_exactly(c) for c in (first, second))
    if kinds & set("US") or not exact_as_float:
        return np.concatenate([_as_text(first), _as_text(second)])
    return np.concatenate([first.astype(np.float64), second.astype(np.float64)])


def _floats_exactly(values):
    """True when a float64 holds every value exactly (integers up to 2^53)."""
    if values.dtype.kind not in "iu" or not len(values):
        return True
    return bool(np.abs(values).max() <= 2 ** 53)


def _as_text(values):
    return np.array(_column_text("", values, None), dtype=str)


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

def write_catalog(path, catalog, formats=None, comments=()):
    """Write a tab-separated catalog; the first line is '#' and the column names.

    formats: printf formats of the columns this tool computed (e.g. {"X_IMAGE": "%.4f"});
    every other column is written so that it reads back exactly as it came in.
    comments: lines written after the names as '# text' (how a value was found, a fit).
    """
    names = list(catalog)
    formats = formats or {}
    with open(path, "w") as handle:
        handle.write("#" + "\t".join(names) + "\n")
        handle.writelines(f"# {line}\n" for line in comments)
        if catalog.nrows:
            columns = [_written_text(catalog, name, formats.get(name)) for name in names]
            handle.writelines("\t".join(row) + "\n" for row in zip(*columns))


def _written_text(catalog, name, fmt):
    """A column as text: as it was read where it is unchanged, else formatted."""
    text = catalog.text_of(name) if isinstance(catalog, Catalog) and fmt is None else None
    if text is not None:
        return text.tolist()
    return _column_text(name, np.asarray(catalog[name]), fmt)


def _column_text(name, values, fmt):
    if values.dtype.kind in "US":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind in "iub":
        return [str(int(v)) for v in values.tolist()]
    if name in INTEGER_COLUMNS and np.all(values[np.isfinite(values)] ==
                                          np.round(values[np.isfinite(values)])):
        fmt = "%.0f"  # whole numbers stored as floats (a missing value is written nan)
    if fmt:
        return [fmt % v for v in values.tolist()]
    if values.dtype == np.float32:
        return ["%.9g" % v for v in values.tolist()]
    return [repr(v) for v in values.astype(np.float64).tolist()]  # shortest exact text


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

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
        with open(path, encoding="utf-8-sig") as handle:  # -sig: a BOM is not a name
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
    names = [name.strip() for name in names]
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
    if len(set(names)) != len(names) or not all(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ToolError(f"{what} has repeated or empty column names "
                        f"({', '.join(repeated) or 'an empty name'})")
    table = _split_columns([line for _, line in rows], len(names), rows, what)
    catalog = Catalog((name, _typed_column(name, table[k])) for k, name in enumerate(names))
    catalog.lines = np.array([number for number, _ in rows], dtype=np.int64)
    for k, name in enumerate(names):
        if catalog[name].dtype.kind == "f":  # written back as it came in while unchanged
            catalog.remember_text(name, table[k])
    return catalog


def _split_columns(lines, ncols, rows, what):
    """The text of each column (stripped), from tab-separated lines (or, without tabs,
    whitespace-separated ones). All lines are split in one call once every line is known
    to have ncols fields: a million-row catalog in seconds, not minutes."""
    if not lines:
        return [np.array([], dtype=str) for _ in range(ncols)]
    tabbed = [line.count("\t") for line in lines]
    if all(count == ncols - 1 for count in tabbed):
        joined = "\t".join(lines)
        flat = joined.split("\t")
    else:
        widths = [len(line.split("\t")) if count else len(line.split())
                  for line, count in zip(lines, tabbed)]
        for (number, _), width in zip(rows, widths):
            if width != ncols:
                raise ToolError(f"{what}: line {number} has {width} values but the header "
                                f"names {ncols} columns")
        joined = None
        flat = [value for line, count in zip(lines, tabbed)
                for value in (line.split("\t") if count else line.split())]
    columns = [np.array(flat[k::ncols], dtype=str) for k in range(ncols)]
    del flat
    if joined is None or " " in joined:
        columns = [np.strings.strip(column) for column in columns]
    return columns


def _typed_column(name, text):
    """Integers where every value is a whole-number literal; floats where every value is a
    number written as its shortest exact text (an empty field is NaN); else the text itself,
    so that it is written back exactly (1.50, 150.22222222222222, MJD 57466.3320138889000)."""
    if len(text) and name not in FLOAT_COLUMNS and _all_integer_text(text):
        try:
            return text.astype(np.int64)
        except OverflowError:
            return text  # beyond 64 bits: kept as written
        except ValueError:
            pass  # "+-5" and the like: not integers
    filled = np.where(text == "", "nan", text)
    try:
        values = filled.astype(np.float64)
    except ValueError:
        return text
    return values if _floats_hold_the_text(values, filled) else text


def _all_integer_text(text):
    """True when every text is a whole-number literal (an optional sign, then digits),
    tested in one vectorised pass."""
    return bool(np.all(np.strings.isdigit(np.strings.lstrip(text, "+-"))))


def _floats_hold_the_text(values, text):
    """True when every float64 is the very number its text writes (1.7900 is 1.79; a
    17-digit 150.22222222222222 is not the float 150.22222222222223). A text of at most
    15 characters has at most 15 significant digits, which a float64 always holds: only
    the longer ones are compared, digit by digit."""
    long = np.flatnonzero(np.strings.str_len(text) > 15)
    if len(long) == 0:
        return True
    values, text = values[long], text[long]
    shortest = values.astype(str)  # numpy's shortest exact text of each float64
    written = np.char.lower(np.char.lstrip(text, "+"))
    decimal = (np.char.find(written, ".") >= 0) & (np.char.find(written, "e") < 0)
    trimmed = np.char.rstrip(np.char.rstrip(written, "0"), ".")
    written = np.where(decimal, np.where(np.char.find(trimmed, ".") >= 0, trimmed,
                                         np.char.add(trimmed, ".0")), written)
    differ = np.flatnonzero(shortest != written)
    if len(differ) == 0:
        return True
    from decimal import Decimal, InvalidOperation
    try:
        return all(Decimal(str(text[i])) == Decimal(str(shortest[i])) for i in differ
                   if np.isfinite(values[i]))
    except InvalidOperation:
        return False


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return not str(text).strip()
    return True


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
    catalog = Catalog()
    for name in table.colnames:
        values = np.asarray(table[name])
        if values.dtype.kind == "S":
            values = np.char.decode(values, "ascii", "replace")
        if values.dtype.kind not in "biufU":
            continue
        if values.ndim == 2:
            for k in range(values.shape[1]):
                catalog[name if k == 0 else f"{name}_{k + 1}"] = values[:, k]
        elif values.ndim == 1:
            catalog[name] = values
    return catalog


def _first_table_hdu(path, what):
    from astropy.io import fits
    with fits.open(path) as hdul:
        for index, hdu in enumerate(hdul):
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)) and hdu.name != "LDAC_IMHEAD":
                return index
    raise ToolError(f"{what} is a FITS file without a table")
