"""Injection and recovery: synthetic galaxies and stars of known flux and size added to real
(and crowded synthetic) images, recovered by one sep_extract run, the hot run, the cold
run, the hot/cold join and the join with sky_compute's local sky, as survey pipelines
validate themselves (DES's Balrog): completeness, flux and size recovery, purity, split and
merged fractions, CLASS_STAR's star/galaxy ROC and the local sky against the truth.

    python validation/injection.py      (writes the section into validation/report.md)

Sersic galaxies (n = 1 and 4) and stars are rendered on stamps, convolved with a Moffat PSF
(FFT), and added at positions away from the image's own objects; several seeded
realisations give the figures their spread. The true flux of a source is what was added.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SCRIPTS = os.path.join(REPO, "scripts")
sys.path.insert(0, SCRIPTS)
sys.path.insert(0, HERE)

MOFFAT_BETA = 3.0
# CluSex's README Run1 (hot) and Run2 (cold), as sep_extract options
HOT = ["--thresh", "10", "--minarea", "10", "--deblend-nthresh", "64", "--deblend-cont",
       "0.01", "--back-size", "100", "--back-filtersize", "11"]
COLD = ["--thresh", "1.2", "--minarea", "10", "--deblend-nthresh", "16", "--deblend-cont",
        "0.1", "--back-size", "10", "--back-filtersize", "2"]
MATCH_RADIUS = 2.0   # px: a recovered object within this of an injected one recovers it
METHODS = ("single", "hot", "cold", "hot/cold join")
SEXTRACTOR = "SExtractor (default.sex)"  # the reference, when Debian's source-extractor is here
BEGIN, END = "<!-- injection: begin -->", "<!-- injection: end -->"


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------

def moffat_kernel(fwhm, size=None):
    """A normalised Moffat PSF (beta 3) of the given FWHM (px)."""
    gamma = fwhm / (2 * np.sqrt(2 ** (1 / MOFFAT_BETA) - 1))
    half = size // 2 if size else int(np.ceil(4 * fwhm))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = (1 + (xx ** 2 + yy ** 2) / gamma ** 2) ** -MOFFAT_BETA
    return kernel / kernel.sum()


def sersic_stamp(n, r_eff, q, theta, dx, dy, half):
    """A Sersic profile (unit total flux on the stamp) centred at (dx, dy) from the stamp's
    centre; b_n from the Ciotti & Bertin approximation."""
    b_n = 2 * n - 1 / 3 + 4 / (405 * n)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    u = (xx - dx) * np.cos(theta) + (yy - dy) * np.sin(theta)
    v = -(xx - dx) * np.sin(theta) + (yy - dy) * np.cos(theta)
    radius = np.sqrt(u ** 2 + (v / q) ** 2)
    # the central pixel of a cuspy n = 4 profile is sampled at a quarter pixel out
    profile = np.exp(-b_n * (np.maximum(radius, 0.25) / r_eff) ** (1 / n))
    return profile / profile.sum()


def point_stamp(dx, dy, half):
    """A point source: bilinear weights of a sub-pixel position on the stamp."""
    stamp = np.zeros((2 * half + 1, 2 * half + 1))
    x0, y0 = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - x0, dy - y0
    for oy, wy in ((0, 1 - fy), (1, fy)):
        for ox, wx in ((0, 1 - fx), (1, fx)):
            stamp[half + y0 + oy, half + x0 + ox] += wx * wy
    return stamp


def inject(image, sources, psf_fwhm):
    """Add each source (dict: x, y 0-based, flux, kind star/n1/n4, r_eff, q, theta) to a
    copy of the image; returns (image, true fluxes added within the image)."""
    from scipy.signal import fftconvolve
    out = image.astype(np.float64).copy()
    psf = moffat_kernel(psf_fwhm)
    ny, nx = image.shape
    fluxes = []
    for s in sources:
        half = int(np.ceil(8 * max(s.get("r_eff", 1.0), psf_fwhm))) + psf.shape[0] // 2
        cx, cy = int(round(s["x"])), int(round(s["y"]))
        dx, dy = s["x"] - cx, s["y"] - cy
        if s["kind"] == "star":
            stamp = point_stamp(dx, dy, half)
        else:
            stamp = sersic_stamp(4.0 if s["kind"] == "n4" else 1.0, s["r_eff"], s["q"],
                                 s["theta"], dx, dy, half)
        stamp = fftconvolve(stamp, psf, mode="same") * s["flux"]
        ys = slice(max(cy - half, 0), min(cy + half + 1, ny))
        xs = slice(max(cx - half, 0), min(cx + half + 1, nx))
        part = stamp[ys.start - (cy - half):ys.stop - (cy - half),
                     xs.start - (cx - half):xs.stop - (cx - half)]
        out[ys, xs] += part
        fluxes.append(part.sum())
    return out.astype(np.float32), np.array(fluxes)


def random_sources(count, shape, free, rng, zeropoint=0.0, mags=(-13.0, -8.0),
                   star_fraction=0.25, centre=None, spread=None):
    """Sources at random free positions (free: True where nothing is), a uniform grid of
    magnitudes, n = 1 and 4 galaxies and stars. centre/spread: a cluster (Gaussian)."""
    ny, nx = shape
    sources = []
    while len(sources) < count:
        if centre is None:
            x, y = rng.uniform(10, nx - 10), rng.uniform(10, ny - 10)
        else:
            x, y = rng.normal(centre[0], spread), rng.normal(centre[1], spread)
            if not (10 <= x < nx - 10 and 10 <= y < ny - 10):
                continue
        if not free[int(y), int(x)]:
            continue
        kind = "star" if rng.random() < star_fraction else rng.choice(["n1", "n4"])
        mag = rng.uniform(*mags)
        sources.append({"x": x, "y": y, "flux": 10 ** (-0.4 * (mag - zeropoint)),
                        "kind": kind, "r_eff": rng.uniform(2.0, 6.0),
                        "q": rng.uniform(0.5, 1.0), "theta": rng.uniform(0, np.pi),
                        "mag": mag})
    return sources


# --------------------------------------------------------------------------------------
# Recovery
# --------------------------------------------------------------------------------------

def run_script(name, argv):
    subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *map(str, argv)],
                   check=True, capture_output=True)


def recover(image_path, work, tag="", seeing=None):
    """The catalogs of the four methods (and SExtractor's, given the seeing in px)."""
    from astro_catalogs import read_catalog
    paths = {name: os.path.join(work, f"{tag}{name.replace('/', '_')}.tabular") for name in
             METHODS}
    run_script("sep_extract.py", ["--image", image_path, "--catalog", paths["single"]])
    run_script("sep_extract.py", ["--image", image_path, "--catalog", paths["hot"], *HOT])
    run_script("sep_extract.py", ["--image", image_path, "--catalog", paths["cold"], *COLD])
    run_script("catalog_join.py", ["--catalog1", paths["hot"], "--catalog2", paths["cold"],
                                   "--output", paths["hot/cold join"], "--pixel-scale", "0.3",
                                   "--seeing-fwhm", "0.9"])
    catalogs = {name: read_catalog(path) for name, path in paths.items()}
    if shutil.which("source-extractor") and seeing:
        catalogs[SEXTRACTOR] = sextractor(image_path, work, tag, seeing)
    return catalogs


def sextractor(image_path, work, tag, seeing):
    """SExtractor 2.25 with default.sex (DETECT_THRESH 1.5, BACK_SIZE 64, ...), given the
    field's seeing for CLASS_STAR (pixel scale 1: no WCS)."""
    from astro_catalogs import read_catalog
    from run_validation import run_sextractor
    catalog, _ = run_sextractor(image_path, work, f"{tag}sextractor",
                                {"SEEING_FWHM": f"{seeing:.3f}", "PIXEL_SCALE": 1.0})
    return read_catalog(catalog)


def local_sky(image_path, join_path, work):
    """Method (e): the joined catalog's BACKGROUND replaced by sky_compute's local sky
    (gradient rings around each object, every catalog object masked by mask_build)."""
    from astro_catalogs import read_catalog
    mask = os.path.join(work, "join_mask.fits")
    out = os.path.join(work, "join_sky.tabular")
    run_script("mask_build.py", ["--image", image_path, "--catalog", join_path,
                                 "--output", mask])
    run_script("sky_compute.py", ["--image", image_path, "--catalog", join_path,
                                  "--mask", mask, "--output", out])
    return read_catalog(out)


def match(truth_xy, catalog, originals_xy):
    """For each injected source, the row of the recovered object within MATCH_RADIUS (the
    nearest, each object used once), -1 if none; objects at the image's own sources are
    left out."""
    from scipy.spatial import cKDTree
    found = np.full(len(truth_xy), -1)
    if catalog.nrows == 0:
        return found
    xy = np.column_stack([catalog["X_IMAGE"], catalog["Y_IMAGE"]]) - 1.0
    if len(originals_xy):
        near_original = cKDTree(originals_xy).query(xy)[0] < MATCH_RADIUS
    else:
        near_original = np.zeros(len(xy), dtype=bool)
    distance, index = cKDTree(xy).query(truth_xy)
    taken = set()
    for i in np.argsort(distance):
        j = int(index[i])
        if distance[i] < MATCH_RADIUS and j not in taken and not near_original[j]:
            found[i] = j
            taken.add(j)
    return found


# --------------------------------------------------------------------------------------
# The report section
# --------------------------------------------------------------------------------------

def field_images(work):
    """(name, image, PSF FWHM in px (None: the image's own, measured), cluster centre or
    None, true background or None, magnitude zero point) of the fields."""
    from astropy.io import fits
    sep_frame = fits.getdata(os.path.join(REPO, "test-data", "sep_image.fits")).astype(np.float32)
    rng = np.random.default_rng(12)
    core = (1000.0 + rng.normal(0, 10.0, (256, 256))).astype(np.float32)
    central = [{"x": 128, "y": 128, "flux": 4e5, "kind": "n4", "r_eff": 20.0, "q": 0.8,
                "theta": 0.3}]
    cd, _ = inject(core, central, 3.0)
    # the core's true background: the flat level plus the bright galaxy's light, no noise
    truth, _ = inject(np.full((256, 256), 1000.0, dtype=np.float32), central, 3.0)
    mosaic3 = fits.getdata(os.path.join(REPO, "test-data", "mosaic3_z_ccd3.fits")).astype(
        np.float32)
    # the Mosaic3 CCD is in e-/s with a noise ~90x below the NTT frame's ADU: its magnitudes
    # are shifted so that each bin has the same signal-to-noise as in the NTT frame
    shift = 2.5 * np.log10(background_rms(mosaic3) / background_rms(sep_frame))
    return [("sep's NTT frame (real sky and noise)", sep_frame, None, None, None, 0.0),
            ("a crowded cluster core (a bright n = 4 galaxy, clustered sources)", cd, 3.0,
             (128, 128), truth, 0.0),
            ("the Legacy Surveys Mosaic3 z CCD (real sky and noise)", mosaic3, None, None,
             None, shift)]


def background_rms(image):
    import sep
    return sep.Background(np.ascontiguousarray(image)).globalrms


SEEING = {}  # field: the PSF FWHM (px) its sources were convolved with
SHORT = {"sep's NTT frame (real sky and noise)": "the NTT frame",
         "a crowded cluster core (a bright n = 4 galaxy, clustered sources)": "the core",
         "the Legacy Surveys Mosaic3 z CCD (real sky and noise)": "the Mosaic3 CCD"}


def measured_seeing(catalog_path):
    """The seeing FWHM in pixels that sep_extract measured on the image's own stars (the
    catalog header's CLASS_STAR line: arcsec and arcsec per pixel)."""
    import re
    with open(catalog_path) as handle:
        text = handle.read(20000)
    seeing = re.search(r"seeing FWHM ([0-9.]+) arcsec", text)
    scale = re.search(r"pixel scale ([0-9.]+) arcsec/pixel", text)
    return float(seeing.group(1)) / float(scale.group(1))


def measure(realisations=3, per_field=40):
    """Per field and method: the injected sources and what each method recovered."""
    from astropy.io import fits
    from scipy import ndimage
    results = []
    with tempfile.TemporaryDirectory() as work:
        for field, image, fwhm, centre, background, zeropoint in field_images(work):
            original = os.path.join(work, "original.fits")
            fits.PrimaryHDU(image).writeto(original, overwrite=True)
            seg = os.path.join(work, "seg.fits")
            run_script("sep_extract.py", ["--image", original, "--catalog",
                                          os.path.join(work, "orig.tab"), "--segmentation",
                                          seg])
            fwhm = fwhm or measured_seeing(os.path.join(work, "orig.tab"))
            SEEING[field] = fwhm
            free = ~ndimage.binary_dilation(fits.getdata(seg) > 0, iterations=4)
            # each method's own detections of the image's objects, left out of its matches
            originals = {method: np.column_stack([c["X_IMAGE"], c["Y_IMAGE"]]) - 1.0
                         for method, c in recover(original, work, "orig_", fwhm).items()}
            for seed in range(realisations):
                rng = np.random.default_rng(100 + seed)
                sources = random_sources(per_field, image.shape, free, rng, zeropoint,
                                         centre=centre, spread=50 if centre else None)
                injected, fluxes = inject(image, sources, fwhm)
                path = os.path.join(work, "injected.fits")
                fits.PrimaryHDU(injected).writeto(path, overwrite=True)
                catalogs = recover(path, work, seeing=fwhm)
                catalogs["hot/cold join + local sky"] = local_sky(
                    path, os.path.join(work, "hot_cold join.tabular"), work)
                truth = np.array([[s["x"], s["y"]] for s in sources])
                for method, catalog in catalogs.items():
                    own = originals[method.replace(" + local sky", "")]
                    found = match(truth, catalog, own)
                    results.append({"field": field, "seed": seed, "method": method,
                                    "sources": sources, "flux": fluxes, "found": found,
                                    "catalog": catalog, "originals": own,
                                    "background": background, "zeropoint": zeropoint})
    return results


MAG_BINS = np.array([-13.0, -11.75, -10.5, -9.25, -8.0])
ORDER = METHODS + (SEXTRACTOR, "hot/cold join + local sky")
TABLED = METHODS + (SEXTRACTOR,)


def method_runs(results):
    """(field, method, its realisations) for every tabled method, in the tables' order."""
    keys = sorted({(r["field"], r["method"]) for r in results if r["method"] in TABLED},
                  key=lambda k: (k[0], ORDER.index(k[1])))
    for field, method in keys:
        yield field, method, [r for r in results if r["field"] == field
                              and r["method"] == method]


def summary(results):
    """Rows of (field, method, completeness per magnitude bin with spread, median flux
    ratio, median FLUX_RADIUS / r_eff of galaxies, injected count)."""
    rows = []
    for field, method, runs in method_runs(results):
        per_bin = []
        for low, high in zip(MAG_BINS[:-1], MAG_BINS[1:]):
            fractions = []
            for r in runs:
                mags = np.array([s["mag"] for s in r["sources"]])
                chosen = (mags >= low) & (mags < high)
                if chosen.any():
                    fractions.append(np.mean(r["found"][chosen] >= 0))
            per_bin.append((np.mean(fractions), np.std(fractions)) if fractions else
                           (np.nan, np.nan))
        ratios, sizes = [], []
        for r in runs:
            ok = r["found"] >= 0
            ratios += list(r["catalog"]["FLUX_AUTO"][r["found"][ok]] / r["flux"][ok])
            galaxies = ok & np.array([s["kind"] != "star" for s in r["sources"]])
            sizes += list(r["catalog"]["FLUX_RADIUS"][r["found"][galaxies]] /
                          np.array([s["r_eff"] for s in r["sources"]])[galaxies])
        injected = sum(len(r["sources"]) for r in runs)
        rows.append((field, method, per_bin, np.median(ratios) if ratios else np.nan,
                     np.percentile(ratios, [16, 84]) if ratios else (np.nan, np.nan),
                     np.median(sizes) if sizes else np.nan, injected))
    return rows


# --------------------------------------------------------------------------------------
# Blending, purity, star/galaxy separation and the local sky
# --------------------------------------------------------------------------------------

SB_BINS = np.array([-10.5, -8.0, -6.0, -4.0, -2.0])


def surface_brightness(source):
    """Mean surface brightness within the half-light ellipse, magnitudes per pixel^2."""
    return source["mag"] + 2.5 * np.log10(2 * np.pi * source["q"] * source["r_eff"] ** 2)


def sb_summary(results):
    """Rows of (field, method, completeness of the galaxies per surface-brightness bin,
    galaxies per bin), all realisations pooled."""
    rows = []
    for field, method, runs in method_runs(results):
        mu, found = [], []
        for r in runs:
            for source, row in zip(r["sources"], r["found"]):
                if source["kind"] != "star":
                    mu.append(surface_brightness(source))
                    found.append(row >= 0)
        rows.append((field, method, binned_fractions(mu, found, SB_BINS)))
    return rows


def sb_lines(rows):
    return binned_table(
        "Completeness against surface brightness (galaxies)",
        "The injected galaxies by their mean surface brightness within the half-light "
        "ellipse, mag + 2.5 log10(2 pi q r_eff^2), in magnitudes per pixel^2 (zero point as "
        "above); all realisations pooled, the number of galaxies in brackets.", SB_BINS, rows)


def binned_fractions(values, flags, edges):
    """[(the share of True flags, the count)] of the values in each bin of edges."""
    values, flags = np.asarray(values, dtype=float), np.asarray(flags, dtype=bool)
    per_bin = []
    for low, high in zip(edges[:-1], edges[1:]):
        chosen = (values >= low) & (values < high)
        per_bin.append((np.mean(flags[chosen]) if chosen.any() else np.nan,
                        int(chosen.sum())))
    return per_bin


def binned_table(title, text, edges, rows):
    """A report table of (field, method, binned_fractions) rows under a heading."""
    lines = ["", f"### {title}", "", text, "",
             "| field | method | " + " | ".join(f"{lo:g} to {hi:g}" for lo, hi in
                                                zip(edges[:-1], edges[1:])) + " |",
             "|---|---|" + "---|" * (len(edges) - 1)]
    for field, method, per_bin in rows:
        lines.append(f"| {field} | {method} | "
                     + " | ".join(f"{c:.2f} ({n})" for c, n in per_bin) + " |")
    return lines


def flux_by_magnitude(results):
    """Rows of (field, method, per magnitude bin: median FLUX_AUTO / true flux, its 16-84 %
    range and count; median Kron size sqrt(A B) x KRON_RADIUS / r_eff of the galaxies)."""
    rows = []
    for field, method, runs in method_runs(results):
        mags, ratios, kron = [], [], []
        for r in runs:
            catalog = r["catalog"]
            for i in np.flatnonzero(r["found"] >= 0):
                j, source = r["found"][i], r["sources"][i]
                mags.append(source["mag"])
                ratios.append(catalog["FLUX_AUTO"][j] / r["flux"][i])
                if source["kind"] != "star" and "KRON_RADIUS" in catalog:
                    kron.append(catalog["KRON_RADIUS"][j] * np.sqrt(
                        catalog["A_IMAGE"][j] * catalog["B_IMAGE"][j]) / source["r_eff"])
        mags, ratios = np.array(mags), np.array(ratios)
        per_bin = []
        for low, high in zip(MAG_BINS[:-1], MAG_BINS[1:]):
            chosen = ratios[(mags >= low) & (mags < high)]
            per_bin.append((np.median(chosen), *np.percentile(chosen, [16, 84]), len(chosen))
                           if len(chosen) else (np.nan, np.nan, np.nan, 0))
        rows.append((field, method, per_bin, np.median(kron) if kron else np.nan))
    return rows


def flux_lines(rows):
    lines = ["", "### Flux and size recovery per magnitude", "",
             "FLUX_AUTO / true flux of the recovered sources per magnitude bin: median, "
             "16-84 % range and the number of sources; and the Kron ellipse's size "
             "(KRON_RADIUS x sqrt(A_IMAGE B_IMAGE), the radius FLUX_AUTO sums within) over the "
             "true half-light radius of the galaxies, all bins together.", "",
             "| field | method | " + " | ".join(f"{lo:g} to {hi:g}" for lo, hi in
                                                zip(MAG_BINS[:-1], MAG_BINS[1:]))
             + " | Kron size / r_eff |",
             "|---|---|" + "---|" * (len(MAG_BINS) - 1) + "---|"]
    for field, method, per_bin, kron in rows:
        cells = " | ".join(f"{m:.3f} ({lo:.2f}-{hi:.2f}; {n})" if n else "-"
                           for m, lo, hi, n in per_bin)
        lines.append(f"| {field} | {method} | {cells} | {kron:.2f} |")
    return lines


def detections_near_sources(r):
    """For one recovery: the detections' positions (0-based), which of them are the image's
    own objects, their distance to and index of the nearest injected source, and each
    source's radius (1.5 r_eff, at least MATCH_RADIUS) within which a detection is its."""
    from scipy.spatial import cKDTree
    catalog, sources = r["catalog"], r["sources"]
    truth = np.array([[s["x"], s["y"]] for s in sources])
    radius = np.maximum(MATCH_RADIUS, 1.5 * np.array([s["r_eff"] if s["kind"] != "star"
                                                      else 0.0 for s in sources]))
    xy = np.column_stack([catalog["X_IMAGE"], catalog["Y_IMAGE"]]) - 1.0
    own = (cKDTree(r["originals"]).query(xy)[0] < MATCH_RADIUS if len(r["originals"])
           else np.zeros(len(xy), dtype=bool))
    distance, nearest = cKDTree(truth).query(xy)
    return xy, own, distance, nearest, radius, truth


def purity_by_magnitude(results):
    """Rows of (field, method, per bin of the detections' own magnitude
    (-2.5 log10 FLUX_AUTO + the field's zero point): purity and the number of detections),
    the image's own objects left out, all realisations pooled."""
    rows = []
    for field, method, runs in method_runs(results):
        mags, genuine = [], []
        for r in runs:
            catalog = r["catalog"]
            if catalog.nrows == 0:
                continue
            _, own, distance, nearest, radius, _ = detections_near_sources(r)
            flux = np.asarray(catalog["FLUX_AUTO"], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                mag = -2.5 * np.log10(flux) + r["zeropoint"]
            keep = ~own
            mags += list(mag[keep])
            genuine += list((distance < radius[nearest])[keep])
        rows.append((field, method, binned_fractions(mags, genuine, MAG_BINS)))
    return rows


def purity_lines(rows):
    return binned_table(
        "Purity against magnitude",
        "The share of detections (the image's own objects left out) that are an injected "
        "source or a piece of one, per bin of the detection's own FLUX_AUTO magnitude (zero "
        "point as above); the number of detections in brackets. Detections outside the bins "
        "(fainter noise peaks, brighter blends) are not counted here.", MAG_BINS, rows)


def blend_counts(r):
    """(split, merged, spurious, detections) of one recovery: a source is split when two or
    more detections lie within its radius (1.5 r_eff, at least MATCH_RADIUS) and are nearer
    to it than to any other source; merged when it was not recovered but a detection lies
    within that radius of it and recovers a neighbour; a detection is spurious when it is
    neither an injected source's nor one of the image's own objects."""
    if r["catalog"].nrows == 0:
        return 0, 0, 0, 0
    sources = r["sources"]
    xy, own, distance, nearest, radius, truth = detections_near_sources(r)
    inside = (distance < radius[nearest]) & ~own
    per_source = np.bincount(nearest[inside], minlength=len(sources))
    split = int(np.sum(per_source >= 2))
    found = r["found"]
    recovered_rows = set(found[found >= 0].tolist())
    merged = 0
    for i in np.flatnonzero(found < 0):
        near = np.flatnonzero(np.hypot(*(xy - truth[i]).T) < radius[i])
        merged += any(j in recovered_rows and nearest[j] != i for j in near)
    matched = np.zeros(len(xy), dtype=bool)
    matched[found[found >= 0]] = True
    spurious = int(np.sum(~own & ~matched & ~inside))
    return split, merged, spurious, int(np.sum(~own))


def roc_auc(star_scores, galaxy_scores):
    """The probability that a star's CLASS_STAR exceeds a galaxy's (ties count half)."""
    if not len(star_scores) or not len(galaxy_scores):
        return np.nan
    stars = np.asarray(star_scores)[:, None]
    galaxies = np.asarray(galaxy_scores)[None, :]
    return float(np.mean((stars > galaxies) + 0.5 * (stars == galaxies)))


def class_star_scores(runs):
    stars, galaxies = [], []
    for r in runs:
        if "CLASS_STAR" not in r["catalog"]:
            continue
        for i in np.flatnonzero(r["found"] >= 0):
            value = float(r["catalog"]["CLASS_STAR"][r["found"][i]])
            (stars if r["sources"][i]["kind"] == "star" else galaxies).append(value)
    return stars, galaxies


def blending_summary(results):
    """Rows of (field, method, purity, split fraction, merged fraction, CLASS_STAR AUC,
    stars with CLASS_STAR >= 0.5, galaxies with CLASS_STAR >= 0.5, injected, recovered)."""
    rows = []
    for field, method, runs in method_runs(results):
        split, merged, spurious, detections = np.sum([blend_counts(r) for r in runs], axis=0)
        injected = sum(len(r["sources"]) for r in runs)
        stars, galaxies = class_star_scores(runs)
        rows.append((field, method, 1 - spurious / max(detections, 1), split / injected,
                     merged / injected, roc_auc(stars, galaxies),
                     np.mean(np.array(stars) >= 0.5) if stars else np.nan,
                     np.mean(np.array(galaxies) >= 0.5) if galaxies else np.nan,
                     injected, len(stars) + len(galaxies)))
    return rows


def sky_summary(results, noise=10.0):
    """For the fields whose true background is known: per method, BACKGROUND minus the true
    background at each recovered source (median and 16-84 %, in units of the pixel noise)."""
    rows = []
    for field in sorted({r["field"] for r in results if r["background"] is not None}):
        for method in ("hot/cold join", "hot/cold join + local sky"):
            errors = []
            for r in (r for r in results if r["field"] == field and r["method"] == method):
                for i in np.flatnonzero(r["found"] >= 0):
                    s = r["sources"][i]
                    true = r["background"][int(round(s["y"])), int(round(s["x"]))]
                    errors.append((float(r["catalog"]["BACKGROUND"][r["found"][i]]) - true)
                                  / noise)
            rows.append((field, method, np.median(errors), np.percentile(errors, [16, 84]),
                         len(errors)))
    return rows


def roc_plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fields = sorted({r["field"] for r in results})
    fig, axes = plt.subplots(1, len(fields), figsize=(5.5 * len(fields), 4), dpi=100,
                             squeeze=False)
    cuts = np.linspace(0, 1, 101)
    for ax, field in zip(axes[0], fields):
        for method in TABLED:
            stars, galaxies = class_star_scores(
                [r for r in results if r["field"] == field and r["method"] == method])
            if not stars or not galaxies:
                continue
            ax.plot([np.mean(np.array(galaxies) >= c) for c in cuts],
                    [np.mean(np.array(stars) >= c) for c in cuts],
                    label=f"{method} ({len(stars)} stars, {len(galaxies)} galaxies)")
        ax.plot([0, 1], [0, 1], color="0.7", linestyle=":")
        ax.set_xlabel("galaxies with CLASS_STAR above the cut")
        ax.set_ylabel("stars with CLASS_STAR above the cut")
        ax.set_title(field, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fields = sorted({r[0] for r in rows})
    fig, axes = plt.subplots(1, len(fields), figsize=(5.5 * len(fields), 4), dpi=100,
                             squeeze=False)
    centres = (MAG_BINS[:-1] + MAG_BINS[1:]) / 2
    for ax, field in zip(axes[0], fields):
        for row in (r for r in rows if r[0] == field):
            mean = [b[0] for b in row[2]]
            spread = [b[1] for b in row[2]]
            ax.errorbar(centres, mean, yerr=spread, marker="o", capsize=3, label=row[1])
        ax.set_xlabel("injected magnitude (zero point 0)")
        ax.set_ylabel("completeness")
        injected = next(r[6] for r in rows if r[0] == field)
        ax.set_title(f"{field}\n{injected} injected per method", fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def blending_section(rows, sky_rows, roc_picture):
    lines = ["", "### Purity, blending and star/galaxy separation", "",
             "Per field and method, over all realisations: purity (the share of detections, "
             "the image's own objects left out, that are an injected source or a piece of "
             "one), the share of injected sources split in two or more detections (within "
             "1.5 r_eff), the share merged into a neighbour's detection (not recovered, but "
             "inside a detection that recovers another source), and CLASS_STAR of the "
             "recovered sources: the ROC area (the chance that a star scores above a galaxy) "
             "and the shares of stars and of galaxies at CLASS_STAR >= 0.5.", "",
             "| field | method | purity | split | merged | CLASS_STAR ROC area | stars >= 0.5 |"
             " galaxies >= 0.5 | injected | recovered |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (field, method, purity, split, merged, auc, stars, galaxies, injected,
         recovered) in rows:
        lines.append(f"| {field} | {method} | {purity:.2f} | {split:.3f} | {merged:.3f} | "
                     f"{auc:.2f} | {stars:.2f} | {galaxies:.2f} | {injected} | {recovered} |")
    lines += ["", f"![CLASS_STAR ROC curves]({os.path.basename(roc_picture)})", ""]
    if sky_rows:
        lines += ["### The local sky against the true background (method e)", "",
                  "Where the true background is known (the cluster core: the flat level plus "
                  "the bright galaxy's light, no noise), BACKGROUND at each recovered source "
                  "minus the truth, in units of the pixel noise (10): the joined catalog's "
                  "BACKGROUND (sep's background mesh of the run that found the object) and the "
                  "same catalog after sky_compute (gradient rings, every object masked).", "",
                  "| field | method | median | 16-84 % | sources |", "|---|---|---|---|---|"]
        for field, method, median, (low, high), count in sky_rows:
            lines.append(f"| {field} | {method} | {median:+.2f} | {low:+.2f} to {high:+.2f} "
                         f"| {count} |")
        lines.append("")
    lines.append(blending_words(rows, sky_rows))
    return lines


def blending_words(rows, sky_rows):
    """What the blending and sky tables show, read off them."""
    def row(field, method):
        return next(r for r in rows if r[0] == field and r[1] == method)

    parts = []
    for field in sorted({r[0] for r in rows}):
        single, join = row(field, "single"), row(field, "hot/cold join")
        parts.append(
            f"In {field}, the join splits {join[3]:.1%} of the sources and merges "
            f"{join[4]:.1%} (one run: {single[3]:.1%} and {single[4]:.1%}), at a purity of "
            f"{join[2]:.2f} (one run {single[2]:.2f}); CLASS_STAR separates its recovered stars "
            f"from galaxies with a ROC area of {join[5]:.2f} (one run {single[5]:.2f}), and a "
            f"cut at 0.5 keeps {join[6]:.0%} of its stars and {join[7]:.0%} of its galaxies.")
    for field in sorted({r[0] for r in sky_rows}):
        mesh, local = (next(r for r in sky_rows if r[0] == field and r[1] == m)
                       for m in ("hot/cold join", "hot/cold join + local sky"))
        parts.append(
            f"Under the bright galaxy of {field}, the join's BACKGROUND is off the truth by "
            f"{mesh[2]:+.2f} sigma in the median ({mesh[3][0]:+.2f} to {mesh[3][1]:+.2f}); "
            f"sky_compute's local sky by {local[2]:+.2f} ({local[3][0]:+.2f} to "
            f"{local[3][1]:+.2f}): "
            + ("closer to the truth." if abs(local[2]) < abs(mesh[2]) else
               "no closer to the truth, so the local sky does not help there."))
    return " ".join(parts)


def section(rows, picture, extra=()):
    lines = [BEGIN, "## 3. Injection and recovery: does the hot/cold join earn its keep?", "",
             "Sersic galaxies (n = 1 and 4, half-light radius 2-6 px, axis ratio 0.5-1) and "
             "stars, convolved with a Moffat PSF (beta 3) of the field's seeing (FWHM "
             + ", ".join(f"{fwhm:.2f} px in {SHORT[field]}" for field, fwhm in SEEING.items())
             + "; in the real frames what sep_extract measures on their own stars), added at "
             "random free positions of sep's real NTT frame, of the real Legacy Surveys "
             "Mosaic3 z CCD (its magnitudes shifted to the NTT frame's signal-to-noise) and of "
             "a crowded synthetic cluster core (a bright n = 4 galaxy of r_eff 20 px with the "
             "sources clustered around it); 3 seeded realisations of 40 sources per field "
             "(`validation/injection.py`). A source "
             f"is recovered when a detection lies within {MATCH_RADIUS:g} px of it (detections "
             "of the image's own objects left out). Completeness per magnitude bin is the mean "
             "over the realisations (their spread in brackets).", "",
             "| field | method | " + " | ".join(f"{lo:g} to {hi:g}" for lo, hi in
                                                zip(MAG_BINS[:-1], MAG_BINS[1:]))
             + " | FLUX_AUTO / true (16-84 %) | FLUX_RADIUS / r_eff (galaxies) | injected |",
             "|---|---|" + "---|" * (len(MAG_BINS) - 1) + "---|---|---|"]
    for field, method, bins, ratio, (low, high), size, injected in rows:
        cells = " | ".join(f"{m:.2f} ({s:.2f})" for m, s in bins)
        lines.append(f"| {field} | {method} | {cells} | {ratio:.3f} ({low:.2f}-{high:.2f}) | "
                     f"{size:.2f} | {injected} |")
    lines += ["", f"![completeness against magnitude]({os.path.basename(picture)})", "",
              plain_words(rows), *extra, END, ""]
    return "\n".join(lines)


def plain_words(rows):
    """A paragraph saying what the numbers show, each statement read off the table."""
    def row(field, method):
        return next(r for r in rows if r[0] == field and r[1] == method)

    def completeness(r):
        return np.array([b[0] for b in r[2]])

    parts, gains = [], []
    for field in sorted({r[0] for r in rows}):
        single, hot, cold, join = (row(field, m) for m in
                                   ("single", "hot", "cold", "hot/cold join"))
        gain_hot = np.nanmean(completeness(join) - completeness(hot))
        gain_single = np.nanmean(completeness(join) - completeness(single))
        width = {name: r[4][1] - r[4][0] for name, r in (("join", join), ("single", single))}
        gains.append(gain_hot)
        reference = next((r for r in rows if r[0] == field and r[1] == SEXTRACTOR), None)
        if reference is not None:
            parts.append(
                f"In {field}, SExtractor with default.sex reaches "
                f"{np.nanmean(completeness(reference)):.0%} completeness over the bins "
                f"(the join {np.nanmean(completeness(join)):.0%}, one sep_extract run "
                f"{np.nanmean(completeness(single)):.0%}) with FLUX_AUTO / true flux "
                f"{reference[3]:.3f} (Debian's default.sex detects down to DETECT_MINAREA "
                f"3 pixels, sep_extract's default is 5).")
        parts.append(
            f"In {field}, the join's completeness differs by {100 * gain_hot:+.0f} percentage "
            f"points from the hot run alone (mean over the magnitude bins) and by "
            f"{100 * gain_single:+.0f} from one run at the default settings; in the faintest "
            f"bin it reaches "
            f"{join[2][-1][0]:.0%}, the cold run {cold[2][-1][0]:.0%}, one run "
            f"{single[2][-1][0]:.0%}. Its FLUX_AUTO / true flux is {join[3]:.3f} with a 16-84 % "
            f"range {width['join']:.2f} wide, against {single[3]:.3f} and "
            f"{width['single']:.2f} for one run: "
            + ("tighter, since the hot run's deblending of the bright objects is kept."
               if width["join"] < width["single"] else "no tighter."))
    parts.append(
        "The join keeps the hot run's bright objects and adds the cold run's faint ones"
        + (", so it is more complete than the hot run in every field; "
           if min(gains) > 0 else "; ")
        + "whether it beats one run at the default threshold depends on the field, as the rows "
        "above say. Its fluxes of the added faint "
        "objects are the cold run's, measured against a background of 10-pixel boxes that "
        "takes part of their light (the cold run's own FLUX_AUTO / true flux is "
        f"{np.mean([r[3] for r in rows if r[1] == 'cold']):.3f}): the local sky of "
        "sky_compute is what CluSex adds for that (method e, its accuracy below); the "
        "fluxes in this table are not re-measured with it.")
    return " ".join(parts)


def update_report(text, report=os.path.join(HERE, "report.md"), begin=BEGIN, end=END):
    """Put the section (between its begin and end markers) into the report, in the place
    of an earlier one, or at its end."""
    current = open(report).read() if os.path.exists(report) else ""
    if begin in current and end in current:
        before = current[:current.index(begin)]
        after = current[current.index(end) + len(end):].lstrip("\n")
        updated = before + text.rstrip("\n") + "\n" + ("\n" + after if after else "")
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    with open(report, "w") as handle:
        handle.write(updated)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=3)
    parser.add_argument("--per-field", type=int, default=40)
    options = parser.parse_args()
    results = measure(options.realisations, options.per_field)
    rows = summary(results)
    picture = os.path.join(HERE, "injection_completeness.png")
    plot(rows, picture)
    roc_picture = os.path.join(HERE, "injection_class_star_roc.png")
    roc_plot(results, roc_picture)
    extra = sb_lines(sb_summary(results)) + flux_lines(flux_by_magnitude(results)) + \
        purity_lines(purity_by_magnitude(results)) + blending_section(
        blending_summary(results), sky_summary(results), roc_picture)
    update_report(section(rows, picture, extra))
    print(f"wrote the injection section of {os.path.join(HERE, 'report.md')} and {picture}")


if __name__ == "__main__":
    main()
