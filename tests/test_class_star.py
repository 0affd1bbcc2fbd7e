"""CLASS_STAR, FWHM_IMAGE and ELONGATION against SExtractor 2.25 (committed catalogs made
with a stated SEEING_FWHM and PIXEL_SCALE: tests/make_sextractor_references.py), the .nnw
reader, and the seeing measured on synthetic Moffat stars of known FWHM."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling.models import Moffat2D
from scipy.spatial import cKDTree

import sep_extract
from astro_catalogs import read_catalog
from astro_common import ToolError
from astro_stellarity import read_nnw
from conftest import data_path


def extract(run_script, tmp_path, image, *extra):
    out = tmp_path / "cat.tab"
    result = run_script(sep_extract, ["--image", image, "--catalog", out, "--deblend-cont",
                                      "1", *extra])
    assert result.status == 0, result.err
    result.catalog = read_catalog(str(out))
    result.text = out.read_text()
    return result


@pytest.mark.parametrize("image, reference, options, count", [
    ("sep_image.fits", "sextractor_class_star_sep.cat",
     ["--seeing-fwhm", "1.2", "--pixel-scale", "0.3", "--saturation", "50000"], 65),
    ("mosaic3_z_ccd3.fits", "sextractor_class_star_mosaic3.cat",
     ["--seeing-fwhm", "1.3", "--pixel-scale", "0.262", "--saturation", "47200"], 9),
])
def test_as_sextractor_computes_them(run_script, tmp_path, image, reference, options, count):
    ours = extract(run_script, tmp_path, data_path(image), *options).catalog
    theirs = read_catalog(data_path(reference))
    distance, index = cKDTree(np.column_stack([ours["X_IMAGE"], ours["Y_IMAGE"]])).query(
        np.column_stack([theirs["X_IMAGE"], theirs["Y_IMAGE"]]))
    assert theirs.nrows == ours.nrows == count and np.all(distance < 0.01)
    difference = np.abs(ours["CLASS_STAR"][index] - theirs["CLASS_STAR"])
    assert np.median(difference) <= 0.005 and np.mean(difference <= 0.02) >= 0.9
    assert difference.max() <= 0.002  # SExtractor writes 3 decimals
    np.testing.assert_array_equal(ours["CLASS_STAR"][index] > 0.8, theirs["CLASS_STAR"] > 0.8)
    np.testing.assert_allclose(ours["FWHM_IMAGE"][index], theirs["FWHM_IMAGE"], atol=0.006)
    np.testing.assert_allclose(ours["ELONGATION"][index], theirs["ELONGATION"], atol=0.001)
    assert (theirs["CLASS_STAR"] > 0.8).sum() >= 1 and (theirs["CLASS_STAR"] < 0.6).sum() >= 1


def moffat_stars(path, fwhm, seed=1, size=300, count=40):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    beta = 3.0
    gamma = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    data = rng.normal(0, 1.0, (size, size))
    for x, y, amplitude in zip(*rng.uniform(15, size - 15, (2, count)),
                               rng.uniform(50, 500, count)):
        data += Moffat2D(amplitude, x, y, gamma, beta)(xx, yy)
    fits.PrimaryHDU(data.astype(np.float32)).writeto(path)
    return path


@pytest.mark.parametrize("fwhm_px", [3.0, 4.0])
def test_the_seeing_is_measured_on_the_stars(run_script, tmp_path, fwhm_px):
    image = moffat_stars(tmp_path / "stars.fits", fwhm_px)
    result = extract(run_script, tmp_path, image, "--pixel-scale", "0.25")
    line = next(x for x in result.out.splitlines() if x.startswith("CLASS_STAR: seeing"))
    seeing = float(line.split("FWHM ")[1].split()[0])
    assert seeing == pytest.approx(fwhm_px * 0.25, rel=0.05), line
    assert "measured: the median FWHM_IMAGE of" in line
    assert f"# {line}" in result.text  # and in the catalog's header
    stars = result.catalog["CLASS_STAR"][result.catalog["FLAGS"] == 0]
    assert np.median(stars) > 0.8  # the stars are called stars


def test_without_a_wcs_or_pixel_scale_the_class_is_still_computed(run_script, tmp_path):
    bare = tmp_path / "bare.fits"  # no WCS, no CDELT
    fits.PrimaryHDU(fits.getdata(data_path("sep_image.fits")).astype(np.float32)).writeto(bare)
    result = extract(run_script, tmp_path, bare, "--seeing-fwhm", "4")
    assert "CLASS_STAR takes 1 arcsec per pixel" in result.out
    assert np.all((result.catalog["CLASS_STAR"] >= 0) & (result.catalog["CLASS_STAR"] <= 1))


def test_a_user_network_file(run_script, tmp_path):
    own = tmp_path / "own.nnw"
    own.write_text(open(sep_extract.DEFAULT_NNW).read())
    default = extract(run_script, tmp_path, data_path("sep_image.fits"), "--seeing-fwhm",
                      "1.2", "--pixel-scale", "0.3").catalog
    result = extract(run_script, tmp_path, data_path("sep_image.fits"), "--seeing-fwhm",
                     "1.2", "--pixel-scale", "0.3", "--nnw", own).catalog
    np.testing.assert_array_equal(result["CLASS_STAR"], default["CLASS_STAR"])


@pytest.mark.parametrize("text, message", [
    ("# no header\n3 10 10 1\n", "is not a SExtractor .nnw file (no NNW first line)"),
    ("NNW\n3 10 10 1\n1 2 x\n", "line 3: '1 2 x' is not a row of numbers"),
    ("NNW\n3 10 10 1\n" + "1 " * 10 + "\n", "malformed: it ends before the input scales"),
    ("NNW\n3 10 10 1\n" + "1 " * 9 + "\n", "line 3 has 9 values where the input biases need 10"),
    ("NNW\n2 0 1\n", "malformed: line 2 must give the number of layers"),
])
def test_malformed_network_files(tmp_path, text, message):
    path = tmp_path / "bad.nnw"
    path.write_text(text)
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_nnw(str(path))


def test_a_malformed_network_file_through_the_command_line(run_script, tmp_path):
    bad = tmp_path / "bad.nnw"
    bad.write_text("NNW\n3 10 10 1\n")
    out = tmp_path / "c.tab"
    result = run_script(sep_extract, ["--image", data_path("sep_image.fits"), "--catalog", out,
                                      "--nnw", bad])
    assert result.status == 2 and not out.exists()
    assert result.err.strip() == ("Error: the neural-network weights file is malformed: it "
                                  "ends before the input biases")


def test_the_default_network_reads_as_sextractor_s():
    network = read_nnw(sep_extract.DEFAULT_NNW)
    assert network.sizes == (10, 10, 1)
    assert network.weights[0].shape == (10, 10) and network.weights[1].shape == (10, 1)
    assert network.in_bias[0] == pytest.approx(-1.56604) and network.out_scale[0] == 1.0


def test_the_overlay_and_the_stamps_select_galaxies(run_script, tmp_path):
    import desi_cutout
    import ellipse_overlay
    from astro_catalogs import write_catalog
    from test_catalog_join import at, make_catalog  # noqa: I100
    catalog = make_catalog([at(20, 20, CLASS_STAR=0.98), at(40, 40, CLASS_STAR=0.1),
                            at(60, 60, CLASS_STAR=0.3)])
    path = tmp_path / "c.tab"
    write_catalog(str(path), catalog)
    result = run_script(ellipse_overlay, ["--image", data_path("sep_image.fits"), "--catalog",
                                          path, "--max-class-star", "0.6", "--output",
                                          tmp_path / "o.png"])
    assert result.status == 0 and "catalog 1: drawing 2 ellipses" in result.out
    selection = desi_cutout.StampTable(str(path), max_class_star=0.6)
    positions = desi_cutout.table_positions(selection, 64, 0.262)
    assert [p[0] for p in positions] == [2, 3]
