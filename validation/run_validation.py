#!/usr/bin/env python
"""Validation: our tools side by side with SExtractor 2.25 and CluSex 2.5.6 on real images.

Run through `./suite validate` (it installs Debian's source-extractor and CluSex in a venv of
its own), or: python validation/run_validation.py --clusex-bin DIR
Writes validation/report.md and the PNG plots beside it.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
from astro_catalogs import CLUSEX_COLUMNS, read_catalog  # noqa: E402

SEX_PARAMS = ("NUMBER", "X_IMAGE", "Y_IMAGE", "XPEAK_IMAGE", "YPEAK_IMAGE", "ALPHA_J2000",
              "DELTA_J2000", "A_IMAGE", "B_IMAGE", "THETA_IMAGE", "ELLIPTICITY", "KRON_RADIUS",
              "FLUX_AUTO", "FLUXERR_AUTO", "MAG_AUTO", "MAG_BEST", "FLUX_RADIUS",
              "ISOAREA_IMAGE", "BACKGROUND", "CLASS_STAR", "FLAGS")
SEX_SHARE = "/usr/share/source-extractor"
# CluSex README Run1 (hot) and Run2 (cold)
HOT = {"DETECT_THRESH": 10, "ANALYSIS_THRESH": 10, "DETECT_MINAREA": 10, "DEBLEND_NTHRESH": 64,
       "DEBLEND_MINCONT": 0.01, "BACK_SIZE": 100, "BACK_FILTERSIZE": 11}
COLD = {"DETECT_THRESH": 1.2, "ANALYSIS_THRESH": 1.2, "DETECT_MINAREA": 10,
        "DEBLEND_NTHRESH": 16, "DEBLEND_MINCONT": 0.1, "BACK_SIZE": 10, "BACK_FILTERSIZE": 2}
SEP_FOR = {"DETECT_THRESH": "--thresh", "DETECT_MINAREA": "--minarea",
           "DEBLEND_NTHRESH": "--deblend-nthresh", "DEBLEND_MINCONT": "--deblend-cont",
           "BACK_SIZE": "--back-size", "BACK_FILTERSIZE": "--back-filtersize"}


def timed(command, **kwargs):
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True,
                            **kwargs)
    return result, time.perf_counter() - start


def plain_fits(path, work):
    """SExtractor cannot read tile-compressed files: a plain float32 copy of the image."""
    from astropy.io import fits
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.is_image and h.data is not None)
        out = os.path.join(work, os.path.basename(path).replace(".fits", "_plain.fits"))
        fits.PrimaryHDU(hdu.data.astype(np.float32), hdu.header).writeto(out, overwrite=True)
    return out


def run_sextractor(image, work, name, settings, params=SEX_PARAMS, catalog_type="ASCII_HEAD"):
    param_file = os.path.join(work, f"{name}.param")
    with open(param_file, "w") as handle:
        handle.write("\n".join(params) + "\n")
    catalog = os.path.join(work, f"{name}.cat")
    options = {"CATALOG_NAME": catalog, "CATALOG_TYPE": catalog_type,
               "PARAMETERS_NAME": param_file, "FILTER": "Y",
               "FILTER_NAME": os.path.join(SEX_SHARE, "default.conv"),
               "STARNNW_NAME": os.path.join(SEX_SHARE, "default.nnw"),
               "PHOT_AUTOPARAMS": "2.5,3.5", "PHOT_FLUXFRAC": "0.5", "GAIN": 0,
               "CHECKIMAGE_TYPE": "NONE", "VERBOSE_TYPE": "QUIET", "CLEAN": "Y",
               "CLEAN_PARAM": 1.0, "BACKPHOTO_TYPE": "GLOBAL", **settings}
    command = ["source-extractor", image, "-c", os.path.join(SEX_SHARE, "default.sex")]
    for key, value in options.items():
        command += [f"-{key}", value]
    result, seconds = timed(command, cwd=work)
    if result.returncode != 0:
        raise RuntimeError(f"source-extractor failed: {result.stderr[-500:]}")
    return catalog, seconds


def run_sep(image, work, name, settings, zeropoint, saturation):
    catalog = os.path.join(work, f"{name}.tabular")
    command = [sys.executable, os.path.join(REPO, "scripts", "sep_extract.py"), "--image", image,
               "--catalog", catalog, "--filter-type", "conv", "--zeropoint", zeropoint,
               "--saturation", saturation]
    for key, flag in SEP_FOR.items():
        if key in settings:
            command += [flag, settings[key]]
    result, seconds = timed(command)
    if result.returncode != 0:
        raise RuntimeError(f"sep_extract failed: {result.stderr[-500:]}")
    return catalog, seconds


def match(ours, theirs, radius=1.0):
    """Index pairs (ours, theirs) of mutual nearest neighbours within radius (1-based XY)."""
    from scipy.spatial import cKDTree
    a = np.column_stack([ours["X_IMAGE"], ours["Y_IMAGE"]])
    b = np.column_stack([theirs["X_IMAGE"], theirs["Y_IMAGE"]])
    if not len(a) or not len(b):
        return np.array([], int), np.array([], int)
    d_ab, i_ab = cKDTree(b).query(a, distance_upper_bound=radius)
    _, i_ba = cKDTree(a).query(b)
    pairs = [(i, j) for i, (d, j) in enumerate(zip(d_ab, i_ab))
             if np.isfinite(d) and i_ba[j] == i]
    if not pairs:
        return np.array([], int), np.array([], int)
    return tuple(np.array(p) for p in zip(*pairs))


def robust(values):
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return np.nan, np.nan
    median = np.median(values)
    return median, 1.4826 * np.median(np.abs(values - median))


def compare_catalogs(ours, theirs):
    i, j = match(ours, theirs)
    rows = {"objects (ours / SExtractor)": f"{ours.nrows} / {theirs.nrows}",
            "matched within 1 px": f"{len(i)}",
            "completeness (SExtractor objects found)": f"{len(i) / max(theirs.nrows, 1):.3f}",
            "purity (our objects in SExtractor)": f"{len(i) / max(ours.nrows, 1):.3f}"}
    for name in ("FLUX_AUTO", "A_IMAGE", "B_IMAGE", "KRON_RADIUS", "FLUX_RADIUS"):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = ours[name][i] / theirs[name][j]
        median, spread = robust(ratio)
        rows[f"{name} ratio: median (robust spread)"] = f"{median:.4f} ({spread:.4f})"
    dtheta = (ours["THETA_IMAGE"][i] - theirs["THETA_IMAGE"][j] + 90) % 180 - 90
    round_enough = (theirs["ELLIPTICITY"][j] > 0.1)
    median, spread = robust(dtheta[round_enough])
    rows["THETA difference, E > 0.1 (deg)"] = f"{median:.3f} ({spread:.3f})"
    flags = np.mean(ours["FLAGS"][i] == theirs["FLAGS"][j]) if len(i) else np.nan
    rows["same FLAGS"] = f"{flags:.3f}"
    return rows, (i, j)


def plot_comparison(ours, theirs, pairs, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    i, j = pairs
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    good = (theirs["FLUX_AUTO"][j] > 0) & (ours["FLUX_AUTO"][i] > 0)
    ax = axes[0]
    ax.loglog(theirs["FLUX_AUTO"][j][good], ours["FLUX_AUTO"][i][good], ".", ms=4)
    lims = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
    ax.plot(lims, lims, "k-", lw=0.6)
    ax.set_xlabel("SExtractor FLUX_AUTO")
    ax.set_ylabel("sep_extract FLUX_AUTO")
    ax = axes[1]
    ax.plot(theirs["A_IMAGE"][j], ours["A_IMAGE"][i], ".", ms=4, label="A_IMAGE")
    ax.plot(theirs["KRON_RADIUS"][j], ours["KRON_RADIUS"][i], "x", ms=4, label="KRON_RADIUS")
    ax.plot(theirs["FLUX_RADIUS"][j], ours["FLUX_RADIUS"][i], "+", ms=5, label="FLUX_RADIUS")
    top = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([0, top], [0, top], "k-", lw=0.6)
    ax.set_xlabel("SExtractor (pixels)")
    ax.set_ylabel("sep_extract (pixels)")
    ax.legend(fontsize=8)
    ax = axes[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = ours["FLUX_AUTO"][i][good] / theirs["FLUX_AUTO"][j][good] - 1
    ax.hist(np.clip(residual, -0.2, 0.2), bins=40)
    ax.set_xlabel("FLUX_AUTO ours / SExtractor - 1 (clipped at 0.2)")
    ax.set_ylabel("objects")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(rows, header=("quantity", "value")):
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    return "\n".join(lines)


def section_sextractor(work, report):
    images = [("sep_image.fits", "sep's test image (ESO NTT, 256x256)", 0.0, 50000.0),
              ("mosaic3_z_ccd3.fits", "Legacy Surveys Mosaic3 z CCD (204x208, e-/s)", 26.2876,
               1e9)]
    report.append("## 1. Source extraction: sep_extract against SExtractor 2.25\n")
    report.append(
        "Both with the same settings: threshold 1.5 x the global RMS, minimum area 5, the "
        "3x3 default filter as a convolution, CLEAN 1.0, background 64/3, PHOT_AUTOPARAMS "
        "2.5,3.5, PHOT_FLUXFRAC 0.5, GAIN 0; deblending off (DEBLEND_MINCONT 1) and on "
        "(32 levels, 0.005). Objects are matched as mutual nearest neighbours within 1 pixel. "
        "The Mosaic3 CCD is tile-compressed: SExtractor reads a decompressed copy, "
        "sep_extract the file itself.\n")
    timings = {}
    for name, label, zeropoint, saturation in images:
        image = os.path.join(REPO, "test-data", name)
        sex_image = plain_fits(image, work)
        for deblend, cont in (("deblending off", 1.0), ("deblending on", 0.005)):
            settings = {"DETECT_THRESH": 1.5, "ANALYSIS_THRESH": 1.5, "DETECT_MINAREA": 5,
                        "DEBLEND_NTHRESH": 32, "DEBLEND_MINCONT": cont, "BACK_SIZE": 64,
                        "BACK_FILTERSIZE": 3, "MAG_ZEROPOINT": zeropoint,
                        "SATUR_LEVEL": saturation}
            tag = f"{name.split('.')[0]}_{'off' if cont == 1.0 else 'on'}"
            sex_cat, sex_s = run_sextractor(sex_image, work, tag, settings)
            our_cat, our_s = run_sep(image, work, tag, settings, zeropoint, saturation)
            theirs, ours = read_catalog(sex_cat), read_catalog(our_cat)
            rows, pairs = compare_catalogs(ours, theirs)
            plot = f"sextractor_{tag}.png"
            plot_comparison(ours, theirs, pairs, f"{label}, {deblend}",
                            os.path.join(HERE, plot))
            report.append(f"### {label}, {deblend}\n\n{table(rows)}\n\n![{tag}]({plot})\n")
            timings[f"{label}, {deblend}"] = (sex_s, our_s)
    report.append("Timing (one run each, wall seconds, including process start; our script "
                  "starts Python and imports astropy, which dominates on images this small):\n")
    report.append("| image | SExtractor | sep_extract | ratio |\n|---|---|---|---|")
    for key, (sex_s, our_s) in timings.items():
        report.append(f"| {key} | {sex_s:.2f} | {our_s:.2f} | {our_s / sex_s:.1f} |")
    report.append("")


def clusex(bin_dir, command, args, cwd):
    path = os.path.join(bin_dir, command)
    result, seconds = timed([path, *args], cwd=cwd)
    ok = result.returncode == 0
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] if not ok else []
    return ok, seconds, tail[0] if tail else ""


def ours(script, args):
    result, seconds = timed([sys.executable, os.path.join(REPO, "scripts", script), *args])
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed: {result.stderr[-400:]}")
    return seconds


def section_clusex(work, bin_dir, report):
    image = os.path.join(REPO, "test-data", "sep_image.fits")
    report.append("## 2. The CluSex steps: ours against CluSex 2.5.6 on the same catalogs\n")
    report.append(
        "SExtractor 2.25 makes CluSex's hot (Run1) and cold (Run2) 15-column catalogs of sep's "
        "test image (SATUR_LEVEL 50000). CluSex's commands and ours then run on the same "
        "files.\n")
    catalogs = {}
    for name, settings in (("hot", HOT), ("cold", COLD)):
        path, _ = run_sextractor(image, work, f"clusex_{name}",
                                 {**settings, "SATUR_LEVEL": 50000, "MAG_ZEROPOINT": 25},
                                 params=CLUSEX_COLUMNS, catalog_type="ASCII")
        catalogs[name] = path
    rows, timing = {}, {}
    hot, cold = read_catalog(catalogs["hot"]), read_catalog(catalogs["cold"])
    rows["hot / cold objects (SExtractor)"] = f"{hot.nrows} / {cold.nrows}"
    # join without size correction: CluSex joincat -s 1.5 against catalog_join --mode add
    cj = os.path.join(work, "clusex_join.cat")
    ok, seconds, message = clusex(bin_dir, "joincat", [catalogs["hot"], catalogs["cold"], "-s",
                                                       "1.5", "-o", cj], work)
    oj = os.path.join(work, "our_join.tabular")
    timing["join (joincat / catalog_join)"] = (
        seconds, ours("catalog_join.py", ["--catalog1", catalogs["hot"], "--catalog2",
                                          catalogs["cold"], "--output", oj, "--mode", "add",
                                          "--join-scale", "1.5"]))
    ours_join = read_catalog(oj)
    if ok:
        theirs_join = read_catalog(cj)
        same = set(zip(ours_join["XPEAK_IMAGE"], ours_join["YPEAK_IMAGE"])) == \
            set(zip(theirs_join["XPEAK_IMAGE"], theirs_join["YPEAK_IMAGE"]))
        rows["join, JoinScale 1.5: objects (CluSex / ours)"] = \
            f"{theirs_join.nrows} / {ours_join.nrows}; same objects: {same}"
    else:
        rows["join: CluSex joincat"] = f"crashed: {message}"
    # the hot/cold merge with size correction: ours only (CluSex runs it only inside
    # its whole pipeline, which also launches ds9)
    hc = os.path.join(work, "our_hotcold.tabular")
    ours("catalog_join.py", ["--catalog1", catalogs["hot"], "--catalog2", catalogs["cold"],
                             "--output", hc, "--seeing-fwhm", "1.2", "--pixel-scale", "1"])
    rows["our hot/cold merge with size correction"] = f"{read_catalog(hc).nrows} objects"
    # masks on CluSex's joined catalog (no saturated boxes: an empty region file)
    mask_input = cj if ok else oj
    sat = os.path.join(work, "empty.reg")
    with open(sat, "w") as handle:
        handle.write("box(1,1,0,0,0)\n")
    cm = os.path.join(work, "clusex_mask.fits")
    ok_mask, seconds, message = clusex(bin_dir, "makemask", [mask_input, image, "-s", "1.5",
                                                             "-o", cm, "-sf", sat, "-n"], work)
    om = os.path.join(work, "our_mask.fits")
    timing["mask (makemask / mask_build)"] = (
        seconds, ours("mask_build.py", ["--catalog", mask_input, "--image", image, "--output", om,
                                        "--scale", "1.5", "--satur-level", "1e12"]))
    if ok_mask:
        from astropy.io import fits
        theirs_mask, our_mask = fits.getdata(cm), fits.getdata(om)
        differ = int(np.sum((theirs_mask > 0) != (our_mask > 0)))
        shifted = np.zeros_like(theirs_mask)
        shifted[:-1, :-1] = theirs_mask[1:, 1:]  # undo CluSex's +1 px shift in x and y
        left = (shifted > 0) != (our_mask > 0)
        joined = read_catalog(mask_input)
        saturated = joined["NUMBER"][(np.asarray(joined["FLAGS"]).astype(int) & 4) > 0]
        in_saturated = int(np.isin(our_mask[left], saturated).sum())
        edge = int(left[-1, :].sum() + left[:-1, -1].sum())
        rows["mask pixels that differ (masked or not)"] = (
            f"{differ} of {our_mask.size}; {int(left.sum())} after moving CluSex's mask by "
            f"-1 px in x and y (its ellipses are centred 1 px off): {in_saturated} are the "
            f"ellipses of the {len(saturated)} saturated objects (FLAGS 4), which CluSex never "
            f"draws, and {edge} lie in the last row and column, emptied by the shift")
    else:
        rows["mask: CluSex makemask"] = f"crashed: {message}"
    # local sky, gradient method, on the same mask (ours, to compare like with like)
    cs = os.path.join(work, "clusex_sky.cat")
    ok_sky, seconds, message = clusex(bin_dir, "compsky", [mask_input, image, om, "-s", "1",
                                                           "-w", "20", "-o", cs], work)
    osky = os.path.join(work, "our_sky.tabular")
    timing["sky (compsky / sky_compute)"] = (
        seconds, ours("sky_compute.py", ["--image", image, "--catalog", mask_input, "--mask", om,
                                         "--output", osky, "--scale", "1", "--ring-width",
                                         "20"]))
    our_sky = read_catalog(osky)
    if ok_sky:
        theirs_sky = read_catalog(cs)
        valid = theirs_sky["BACKGROUND"] != 0
        diff = (our_sky["BACKGROUND"][valid] - theirs_sky["BACKGROUND"][valid]) / \
            our_sky["SKY_STD"][valid]
        median, spread = robust(diff)
        rows["sky difference in units of the ring's noise: median (spread)"] = \
            f"{median:.3f} ({spread:.3f}) over {int(valid.sum())} objects; CluSex gave 0 " \
            f"(its 'never flattened' value) for {int((~valid).sum())}"
        theta_changed = np.any(np.abs(theirs_sky["THETA_IMAGE"] - read_catalog(mask_input)[
            "THETA_IMAGE"]) > 1)
        rows["CluSex compsky rewrote THETA (+90)"] = str(bool(theta_changed))
    else:
        rows["sky: CluSex compsky"] = f"crashed: {message}"
    report.append(table(rows) + "\n")
    report.append("Timing (one run each, wall seconds, including process start):\n")
    report.append("| step | CluSex | ours | ratio CluSex / ours |\n|---|---|---|---|")
    for key, (theirs_s, ours_s) in timing.items():
        report.append(f"| {key} | {theirs_s:.2f} | {ours_s:.2f} | {theirs_s / ours_s:.1f} |")
    report.append("")


def main():
    warnings.filterwarnings("ignore", message=".*(non-standard convention|keyword).*")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusex-bin", required=True, help="bin folder of CluSex's venv")
    args = parser.parse_args()
    if not shutil.which("source-extractor"):
        sys.exit("Error: source-extractor not found (Debian package source-extractor)")
    version = subprocess.run(["source-extractor", "--version"], capture_output=True,
                             text=True).stdout.strip()
    report = ["# Validation against SExtractor and CluSex\n",
              f"Regenerated by `./suite validate` ({time.strftime('%Y-%m-%d')}): "
              f"{version}; CluSex 2.5.6 from PyPI in a venv of its own; our scripts from this "
              "repository. Everything below comes from one run on the development machine "
              "(2 cores).\n"]
    with tempfile.TemporaryDirectory() as work:
        section_sextractor(work, report)
        section_clusex(work, args.clusex_bin, report)
    report.append(
        "## Where we differ from CluSex on purpose\n\n"
        "- Masks: ellipses are centred on the catalog's 1-based peak (CluSex's are 1 pixel "
        "off in x and y), the first saturated box of a region file is not skipped, and a "
        "flagged star without saturated pixels does not stop the run.\n"
        "- Size correction: the seeing floor is converted from arcsec to pixels with the "
        "pixel scale; a resized object takes its counterpart's shape (E, THETA) with the size; "
        "KRON_RADIUS is not rounded.\n"
        "- Join: added objects never reuse a catalog-1 NUMBER; `-i` keeps each row's own "
        "Dec; one-row and empty catalogs work.\n"
        "- Sky: THETA is written back unchanged (CluSex writes THETA + 90); rings are filled "
        "elliptical annuli (CluSex samples ring outlines and clamps them onto the image "
        "border); a sky that never flattens is flagged (SKY_FLAG 1) instead of reported as 0; "
        "random boxes are seeded and pooled per box.\n")
    with open(os.path.join(HERE, "report.md"), "w") as handle:
        handle.write("\n".join(report))
    print(f"wrote {os.path.join(HERE, 'report.md')}")
    # section 3: injection and recovery (validation/injection.py; it also runs alone)
    subprocess.run([sys.executable, os.path.join(HERE, "injection.py")], check=True)
    # section 4: weight maps, flag images and bad pixels (validation/weights.py)
    subprocess.run([sys.executable, os.path.join(HERE, "weights.py")], check=True)


if __name__ == "__main__":
    main()
