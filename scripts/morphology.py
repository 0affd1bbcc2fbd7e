#!/usr/bin/env python
"""Non-parametric morphology and a Gini-M20 class of each catalog object (statmorph), with a
gallery of the objects and the Gini-M20 diagram: CluSex's classification, reproducibly.

Each object is measured by statmorph (Rodriguez-Gomez et al. 2019) on a stamp around its
segment, the other objects masked: Gini, M20, concentration, asymmetry, smoothness, a
Sersic fit, the Petrosian radius and the S/N per pixel. Its class: star when CLASS_STAR is
at least the star threshold, else by the Gini-M20 plane of Lotz et al. (2008): merger when
G > -0.14 M20 + 0.33, early (E/S0/Sa) when G > 0.14 M20 + 0.80, else late (Sb/Sc/Irr);
unreliable when the S/N per pixel is below 2.5 or statmorph flagged the measurement.
"""

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astro_catalogs import Catalog, read_catalog, write_catalog  # noqa: E402
from astro_common import (  # noqa: E402
    existing_file, finite_float, fraction, log, new_parser, Outputs,
    positive_float, positive_int, run_cli, ToolError,
)
from astro_images import mask_from_image, read_image, require_same_shape  # noqa: E402
from astro_photometry import estimate_background  # noqa: E402

MORPH_COLUMNS = ("NUMBER", "GINI", "M20", "CONCENTRATION", "ASYMMETRY", "SMOOTHNESS",
                 "SERSIC_N", "SERSIC_RHALF", "SERSIC_ELLIP", "RPETRO", "SN_PER_PIXEL",
                 "MORPH_FLAG", "MORPH_CLASS", "MORPH_REASON")
STATMORPH_NAMES = {"GINI": "gini", "M20": "m20", "CONCENTRATION": "concentration",
                   "ASYMMETRY": "asymmetry", "SMOOTHNESS": "smoothness",
                   "SERSIC_N": "sersic_n", "SERSIC_RHALF": "sersic_rhalf",
                   "SERSIC_ELLIP": "sersic_ellip", "RPETRO": "rpetro_circ",
                   "SN_PER_PIXEL": "sn_per_pixel"}
MIN_SN_PER_PIXEL = 2.5      # Lotz et al. 2004: below it, G and M20 are not reliable
MIN_SEGMENT_PIXELS = 10     # statmorph needs a few pixels to work with
STAMP_GROWTH = 1.5          # stamp half-side = this x the segment's extent (+ margin)
STAMP_MIN = 48              # px: statmorph's own minimum cutout
FAILED_FLAG = 5             # our MORPH_FLAG when statmorph could not run at all
CLASS_COLOURS = {"merger": "#d62728", "early": "#ff7f0e", "late": "#1f77b4",
                 "star": "#7f7f7f", "unreliable": "#bcbd22"}
OUTPUT_FORMATS = {name: "%.5g" for name in STATMORPH_NAMES} | {"GINI": "%.4f", "M20": "%.4f"}
MAX_GALLERY = 100           # stamps in a PNG gallery (a PDF takes every object, 48 a page)


def lotz_class(gini, m20):
    """The Gini-M20 class of Lotz et al. 2008 (ApJ 672, 177)."""
    if gini > -0.14 * m20 + 0.33:
        return "merger"
    if gini > 0.14 * m20 + 0.80:
        return "early"
    return "late"


@dataclass(frozen=True)
class Selection:
    numbers: tuple = ()        # these NUMBERs only (else the brightest)
    max_mag: float = None
    min_area: int = MIN_SEGMENT_PIXELS
    max_objects: int = 200


def parse_args(argv=None):
    parser = new_parser(__doc__)
    parser.add_argument("--image", required=True, type=existing_file,
                        help="the image (FITS/TIFF) the catalog was made from")
    parser.add_argument("--catalog", required=True, help="catalog with NUMBER (sep_extract)")
    parser.add_argument("--segmentation", required=True, type=existing_file,
                        help="segmentation map (NUMBER labels: sep_extract's, or mask_build's "
                             "object mask)")
    parser.add_argument("--mask", type=existing_file,
                        help="bad pixels (values above 0), left out of every measurement")
    parser.add_argument("--weight", type=existing_file,
                        help="the 1-sigma error of each pixel (statmorph's weightmap); "
                             "default: the background RMS (or --gain)")
    parser.add_argument("--gain", type=positive_float,
                        help="electrons per image unit: statmorph adds the objects' Poisson "
                             "noise to the background RMS")
    parser.add_argument("--psf", type=existing_file,
                        help="PSF image (FITS) for the Sersic fit")
    parser.add_argument("--local-sky", action="store_true",
                        help="subtract each object's BACKGROUND column (sky_compute's local "
                             "sky) instead of the background map")
    parser.add_argument("--numbers", default="",
                        help="measure these NUMBERs only, e.g. 1,5,12")
    parser.add_argument("--max-mag", type=finite_float,
                        help="only objects brighter than this MAG_BEST (or MAG_AUTO)")
    parser.add_argument("--min-area", type=positive_int, default=MIN_SEGMENT_PIXELS,
                        help=f"only segments of at least this many pixels (default "
                             f"{MIN_SEGMENT_PIXELS})")
    parser.add_argument("--max-objects", type=positive_int, default=200,
                        help="at most this many objects, the brightest (default 200)")
    parser.add_argument("--star-class", type=fraction, default=0.8,
                        help="CLASS_STAR at or above this is a star (default 0.8)")
    parser.add_argument("--back-size", type=positive_int, default=64)
    parser.add_argument("--back-filtersize", type=positive_int, default=3)
    parser.add_argument("--processes", type=positive_int,
                        help="parallel processes (default: GALAXY_SLOTS, else the cores)")
    parser.add_argument("--output", required=True, help="morphology table (tab-separated)")
    parser.add_argument("--gallery", help="gallery of the objects (PNG, or PDF for all)")
    parser.add_argument("--gallery-format", choices=("png", "pdf"),
                        help="the gallery's format (default: from its name, else png)")
    parser.add_argument("--diagram", help="the Gini-M20 diagram (PNG)")
    args = parser.parse_args(argv)
    args.numbers = parse_numbers(args.numbers)
    return args


def parse_numbers(text):
    numbers = []
    for item in filter(None, (t.strip() for t in text.replace(";", ",").split(","))):
        try:
            numbers.append(int(item))
        except ValueError:
            raise ToolError(f"--numbers: '{item}' is not an object NUMBER") from None
    return tuple(numbers)


# --------------------------------------------------------------------------------------
# Which objects, and their stamps
# --------------------------------------------------------------------------------------

def brightness(catalog):
    """A magnitude to sort by: MAG_BEST, MAG_AUTO, else -2.5 log10 FLUX_AUTO."""
    for name in ("MAG_BEST", "MAG_AUTO"):
        if name in catalog:
            return catalog.floats(name, finite=False)
    if "FLUX_AUTO" in catalog:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -2.5 * np.log10(catalog.floats("FLUX_AUTO", finite=False))
    return np.zeros(catalog.nrows)


def select_objects(catalog, areas, selection):
    """Row indices of the objects to measure, brightest first."""
    numbers = catalog.floats("NUMBER").astype(np.int64)
    mags = np.nan_to_num(brightness(catalog), nan=np.inf)
    keep = areas[np.clip(numbers, 0, len(areas) - 1)] >= selection.min_area
    keep &= (numbers > 0) & (numbers < len(areas))
    if selection.numbers:
        missing = sorted(set(selection.numbers) - set(numbers.tolist()))
        if missing:
            raise ToolError(f"--numbers: {', '.join(map(str, missing))} not in the catalog")
        keep &= np.isin(numbers, selection.numbers)
    if selection.max_mag is not None:
        keep &= mags < selection.max_mag
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(mags[rows], kind="stable")]
    return rows[:selection.max_objects]


def segment_boxes(segmap, count):
    """Bounding slices of labels 1..count (None where a label is absent)."""
    from scipy import ndimage
    return ndimage.find_objects(segmap, max_label=count)


def stamp_slices(box, shape):
    """A stamp around a segment: STAMP_GROWTH x its extent on each side, at least STAMP_MIN."""
    rows, cols = box
    out = []
    for sl, size in ((rows, shape[0]), (cols, shape[1])):
        extent = sl.stop - sl.start
        half = max(int(np.ceil(STAMP_GROWTH * extent)) + 2, STAMP_MIN // 2)
        centre = (sl.start + sl.stop) // 2
        out.append(slice(max(centre - half, 0), min(centre + half, size)))
    return tuple(out)


def touches_edge(box, shape):
    rows, cols = box
    return rows.start == 0 or cols.start == 0 or rows.stop == shape[0] or cols.stop == shape[1]


# --------------------------------------------------------------------------------------
# statmorph, one object at a time, in a pool of processes
# --------------------------------------------------------------------------------------

def measure_stamp(task):
    """statmorph on one stamp: (row, {column: value}, seconds). Never raises."""
    row, number, image, segment, mask, weight, gain, psf = task
    start = time.perf_counter()
    values = {name: np.nan for name in STATMORPH_NAMES}
    try:
        import warnings
        import statmorph
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            morph = statmorph.SourceMorphology(
                image, segment.astype(np.int32), 1, mask=mask, weightmap=weight, gain=gain,
                psf=psf)
            for column, attribute in STATMORPH_NAMES.items():
                values[column] = float(getattr(morph, attribute))
        flag, reason = int(morph.flag), _flag_reason(int(morph.flag))
    except Exception as err:  # statmorph gave up on this object: a flagged row
        flag, reason = FAILED_FLAG, f"statmorph failed: {type(err).__name__}: " \
                                    f"{' '.join(str(err).split())[:80]}"
    return row, number, values, flag, reason, time.perf_counter() - start


def _flag_reason(flag):
    return {0: "", 1: "statmorph: suspect", 2: "statmorph: bad measurement",
            4: "statmorph: catastrophic failure"}.get(flag, f"statmorph flag {flag}")


def run_pool(tasks, processes):
    """Each task in a process pool (or in this process for one), results in task order,
    with progress in the log."""
    results, done = {}, 0
    step = max(5, len(tasks) // 10)
    if processes <= 1 or len(tasks) <= 1:
        iterator = map(measure_stamp, tasks)
        for result in iterator:
            results[result[0]] = result
            done += 1
            if done % step == 0 or done == len(tasks):
                log(f"morphology: {done} / {len(tasks)} objects")
        return [results[t[0]] for t in tasks]
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=processes) as pool:
        for result in pool.map(measure_stamp, tasks, chunksize=1):
            results[result[0]] = result
            done += 1
            if done % step == 0 or done == len(tasks):
                log(f"morphology: {done} / {len(tasks)} objects")
    return [results[t[0]] for t in tasks]


def job_processes(given):
    if given:
        return given
    slots = os.environ.get("GALAXY_SLOTS", "")
    if slots.isdigit() and int(slots) > 0:
        return int(slots)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


# --------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------

def prepared_image(image, segmap, mask, back_size, back_filtersize):
    """Background-subtracted data and the background RMS map (objects and bad pixels are
    left out of the background)."""
    bkg = estimate_background(image.data, (segmap > 0) | mask, back_size, back_filtersize)
    return (image.data - bkg.back(dtype=image.data.dtype)).astype(np.float64), \
        bkg.rms(dtype=np.float64), bkg


def build_tasks(data, segmap, mask, weight, gain, psf, catalog, rows, boxes, sky_offsets):
    """One statmorph task per object (or a reason why not)."""
    numbers = catalog.floats("NUMBER").astype(np.int64)
    tasks, skipped = [], {}
    for row in rows:
        number = int(numbers[row])
        box = boxes[number - 1] if number - 1 < len(boxes) else None
        if box is None:
            skipped[row] = "no pixels of this NUMBER in the segmentation map"
            continue
        if touches_edge(box, data.shape):
            skipped[row] = "the segment touches the image edge"
            continue
        window = stamp_slices(box, data.shape)
        labels = segmap[window]
        stamp = data[window].copy()
        if sky_offsets is not None:  # the local sky of sky_compute, not the map's
            stamp -= sky_offsets[row]
        others = (labels > 0) & (labels != number)
        bad = mask[window] | others
        tasks.append((row, number, stamp, labels == number, bad,
                      None if weight is None else weight[window], gain, psf))
    return tasks, skipped


def morphology_catalog(catalog, rows, results, skipped, star_class):
    """The output table, one row per selected object, in brightness order."""
    by_row = {r[0]: r for r in results}
    stars = catalog.floats("CLASS_STAR", finite=False) >= star_class \
        if "CLASS_STAR" in catalog else np.zeros(catalog.nrows, dtype=bool)
    columns = {name: [] for name in MORPH_COLUMNS}
    for row in rows:
        number = int(catalog.floats("NUMBER")[row])
        if row in by_row:
            _, _, values, flag, reason, _ = by_row[row]
        else:
            values, flag, reason = {n: np.nan for n in STATMORPH_NAMES}, FAILED_FLAG, \
                skipped[row]
        columns["NUMBER"].append(number)
        for name in STATMORPH_NAMES:
            columns[name].append(values[name])
        cls = object_class(values, flag, stars[row])
        if cls == "unreliable" and not reason:
            reason = f"S/N per pixel below {MIN_SN_PER_PIXEL}"
        columns["MORPH_FLAG"].append(flag)
        columns["MORPH_CLASS"].append(cls)
        columns["MORPH_REASON"].append(reason.replace("\t", " ") or "-")
    out = Catalog()
    for name in MORPH_COLUMNS:
        kind = np.int64 if name in ("NUMBER", "MORPH_FLAG") else \
            (str if name in ("MORPH_CLASS", "MORPH_REASON") else float)
        out[name] = np.array(columns[name], dtype=kind) if columns[name] else \
            np.zeros(0, dtype=kind)
    return out


def object_class(values, flag, is_star):
    if is_star:
        return "star"
    sn = values["SN_PER_PIXEL"]
    if flag != 0 or not np.isfinite(sn) or sn < MIN_SN_PER_PIXEL or \
            not (np.isfinite(values["GINI"]) and np.isfinite(values["M20"])):
        return "unreliable"
    return lotz_class(values["GINI"], values["M20"])


def main(argv=None):
    args = parse_args(argv)
    image = read_image(args.image, "image")
    catalog = read_catalog(args.catalog, "the catalog")
    catalog.require(["NUMBER"])
    segmap_image = read_image(args.segmentation, "segmentation map")
    require_same_shape(segmap_image, image.shape, "segmentation map")
    segmap = np.rint(segmap_image.data).astype(np.int64)
    mask = np.zeros(image.shape, dtype=bool) if image.invalid is None else image.invalid.copy()
    if args.mask:
        mask |= mask_from_image(args.mask, image.shape)
    data, rms, bkg = prepared_image(image, segmap, mask, args.back_size, args.back_filtersize)
    weight = None
    if args.weight:
        weight_image = read_image(args.weight, "weight map")
        require_same_shape(weight_image, image.shape, "weight map")
        weight = weight_image.data.astype(np.float64)
    elif args.gain is None:
        weight = rms
    psf = read_image(args.psf, "PSF").data.astype(np.float64) if args.psf else None
    sky_offsets = None
    if args.local_sky:
        local = catalog.floats("BACKGROUND", finite=False)
        sky_offsets = np.nan_to_num(local - bkg.globalback, nan=0.0)
    count = int(segmap.max()) if segmap.size else 0
    areas = np.bincount(np.clip(segmap.ravel(), 0, None), minlength=count + 1)
    selection = Selection(args.numbers, args.max_mag, args.min_area, args.max_objects)
    rows = select_objects(catalog, areas, selection) if catalog.nrows else np.zeros(0, int)
    boxes = segment_boxes(segmap.astype(np.int32), count) if count else []
    tasks, skipped = build_tasks(data, segmap, mask, weight, args.gain, psf, catalog, rows,
                                 boxes, sky_offsets)
    processes = min(job_processes(args.processes), max(len(tasks), 1))
    log(f"{len(rows)} object(s) selected of {catalog.nrows}; {len(tasks)} measured with "
        f"statmorph in {processes} process(es), {len(skipped)} skipped")
    start = time.perf_counter()
    results = run_pool(tasks, processes) if tasks else []
    if results:
        seconds = time.perf_counter() - start
        log(f"morphology: {seconds:.1f} s, {seconds / len(results):.2f} s per object "
            f"({processes} process(es))")
    table = morphology_catalog(catalog, rows, results, skipped, args.star_class)
    with Outputs() as out:
        write_catalog(out.path(args.output), table, OUTPUT_FORMATS)
        if args.gallery:
            from astro_pictures import figure_format, morphology_gallery
            morphology_gallery(out.path(args.gallery), data, segmap, table, boxes,
                               pdf=(args.gallery_format or figure_format(args.gallery)) ==
                               "pdf",
                               limit=MAX_GALLERY)
        if args.diagram:
            from astro_pictures import gini_m20_diagram
            gini_m20_diagram(out.path(args.diagram), table, CLASS_COLOURS)
    classes = {c: int((table["MORPH_CLASS"] == c).sum()) for c in CLASS_COLOURS}
    log("classes: " + ", ".join(f"{name} {n}" for name, n in classes.items()))


if __name__ == "__main__":
    run_cli(main)
