"""morphology: synthetic Sersic galaxies (n = 1 and n = 4) whose classes and indices are
known, the star rule, objects at the edge or too small, an empty catalog, bad inputs."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling.models import Sersic2D

import morphology
import sep_extract
from astro_catalogs import read_catalog, write_catalog

SHAPE = (160, 330)


@pytest.fixture(scope="module")
def galaxies(tmp_path_factory):
    """A disc (n = 1) on the left, an elliptical (n = 4) in the middle, a small blob at the
    right edge; sky noise 1."""
    folder = tmp_path_factory.mktemp("morph")
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    disc = Sersic2D(amplitude=40.0, r_eff=9.0, n=1.0, x_0=80, y_0=80, ellip=0.3, theta=0.5)
    bulge = Sersic2D(amplitude=40.0, r_eff=6.0, n=4.0, x_0=200, y_0=80, ellip=0.1, theta=0.0)
    edge = Sersic2D(amplitude=50.0, r_eff=3.0, n=1.0, x_0=327, y_0=80)
    rng = np.random.default_rng(4)
    data = disc(xx, yy) + bulge(xx, yy) + edge(xx, yy) + rng.normal(0, 1.0, SHAPE)
    image = folder / "galaxies.fits"
    fits.PrimaryHDU(data.astype(np.float32)).writeto(image)
    catalog, seg = folder / "cat.tab", folder / "seg.fits"
    sep_extract.main(["--image", str(image), "--catalog", str(catalog), "--segmentation",
                      str(seg), "--thresh", "3", "--deblend-cont", "1"])
    without_class = read_catalog(str(catalog))  # no PSF here: CLASS_STAR means nothing
    without_class.pop("CLASS_STAR")
    write_catalog(str(catalog), without_class)
    return image, catalog, seg


def run(run_script, tmp_path, image, catalog, seg, *extra):
    out = tmp_path / "morph.tab"
    result = run_script(morphology, ["--image", image, "--catalog", catalog, "--segmentation",
                                     seg, "--output", out, "--processes", "1", *extra])
    result.table = read_catalog(str(out)) if result.status == 0 else None
    result.out_path = out
    return result


def by_position(table, catalog, x):
    """The row of the object nearest to column x."""
    numbers = catalog["NUMBER"][np.argmin(np.abs(catalog["X_IMAGE"] - x))]
    return {name: table[name][list(table["NUMBER"]).index(numbers)] for name in table}


def test_disc_and_elliptical_are_told_apart(run_script, tmp_path, galaxies):
    image, catalog, seg = galaxies
    result = run(run_script, tmp_path, image, catalog, seg, "--gallery", tmp_path / "g.png",
                 "--diagram", tmp_path / "d.png")
    assert result.status == 0, result.err
    cat = read_catalog(str(catalog))
    disc, bulge = by_position(result.table, cat, 81), by_position(result.table, cat, 201)
    assert disc["MORPH_CLASS"] == "late" and bulge["MORPH_CLASS"] == "early"
    assert disc["SERSIC_N"] == pytest.approx(1.0, abs=0.25)
    assert bulge["SERSIC_N"] == pytest.approx(4.0, abs=1.0)
    assert bulge["GINI"] > disc["GINI"] + 0.05 and bulge["M20"] < disc["M20"]
    assert bulge["CONCENTRATION"] > disc["CONCENTRATION"] + 0.5
    assert disc["MORPH_FLAG"] == 0 and disc["SN_PER_PIXEL"] > 2.5
    # the lines of Lotz et al. 2008, from the values in the table
    for row in (disc, bulge):
        assert row["MORPH_CLASS"] == morphology.lotz_class(row["GINI"], row["M20"])
    edge = by_position(result.table, cat, 327)
    assert edge["MORPH_CLASS"] == "unreliable" and edge["MORPH_FLAG"] == 5
    assert edge["MORPH_REASON"] == "the segment touches the image edge"
    for picture in ("g.png", "d.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "s per object" in result.out and "classes: merger 0, early 1, late 1" in result.out


def test_lotz_lines():
    assert morphology.lotz_class(0.65, -1.0) == "merger"     # above -0.14 M20 + 0.33
    assert morphology.lotz_class(0.60, -2.2) == "early"      # 0.60 > 0.492, below merger
    assert morphology.lotz_class(0.45, -1.8) == "late"


def test_the_star_rule_and_a_pdf_gallery(run_script, tmp_path, galaxies):
    image, catalog, seg = galaxies
    cat = read_catalog(str(catalog))
    cat["CLASS_STAR"] = np.where(np.abs(cat["X_IMAGE"] - 201) < 3, 0.95, 0.03)
    starred = tmp_path / "starred.tab"
    write_catalog(str(starred), cat)
    result = run(run_script, tmp_path, image, starred, seg, "--gallery", tmp_path / "g.pdf")
    assert result.status == 0, result.err
    assert by_position(result.table, cat, 201)["MORPH_CLASS"] == "star"
    assert by_position(result.table, cat, 81)["MORPH_CLASS"] == "late"
    assert (tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"


def test_selection_by_number_and_size(run_script, tmp_path, galaxies):
    image, catalog, seg = galaxies
    cat = read_catalog(str(catalog))
    first = int(cat["NUMBER"][np.argmin(np.abs(cat["X_IMAGE"] - 81))])
    result = run(run_script, tmp_path, image, catalog, seg, "--numbers", str(first))
    assert list(result.table["NUMBER"]) == [first]
    result = run(run_script, tmp_path, image, catalog, seg, "--min-area", "100000")
    assert result.status == 0 and result.table.nrows == 0


def test_an_empty_catalog_gives_valid_empty_outputs(run_script, tmp_path, galaxies):
    image, _, seg = galaxies
    empty = tmp_path / "empty.tab"
    empty.write_text("#NUMBER\tX_IMAGE\tY_IMAGE\tMAG_BEST\n")
    result = run(run_script, tmp_path, image, empty, seg, "--gallery", tmp_path / "g.png",
                 "--diagram", tmp_path / "d.png")
    assert result.status == 0, result.err
    assert result.table.nrows == 0 and list(result.table) == list(morphology.MORPH_COLUMNS)
    assert (tmp_path / "g.png").stat().st_size > 1000 and (tmp_path / "d.png").exists()


@pytest.mark.parametrize("case, message", [
    ("shape", "Error: the segmentation map is 120 x 100 pixels but the image is 330 x 160"),
    ("number", "Error: --numbers: 999 not in the catalog"),
    ("text", "Error: --numbers: 'x' is not an object NUMBER"),
    ("columns", "Error: the catalog lacks the column(s) NUMBER"),
])
def test_bad_inputs(run_script, tmp_path, galaxies, case, message):
    from conftest import data_path
    image, catalog, seg = galaxies
    no_number = tmp_path / "nonumber.tab"
    no_number.write_text("#X_IMAGE\tY_IMAGE\n1\t2\n")
    argv = {"shape": (catalog, data_path("mask_wrong_shape.fits"), []),
            "number": (catalog, seg, ["--numbers", "999"]),
            "text": (catalog, seg, ["--numbers", "1,x"]),
            "columns": (no_number, seg, [])}[case]
    result = run(run_script, tmp_path, image, argv[0], argv[1], *argv[2])
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err
    assert not result.out_path.exists()


def test_a_psf_for_the_sersic_fit(run_script, tmp_path, galaxies):
    from astropy.modeling.models import Moffat2D
    image, catalog, seg = galaxies
    yy, xx = np.mgrid[0:25, 0:25]
    psf = tmp_path / "psf.fits"
    fits.PrimaryHDU(Moffat2D(1.0, 12, 12, 1.5, 3.0)(xx, yy).astype(np.float32)).writeto(psf)
    cat = read_catalog(str(catalog))
    disc = int(cat["NUMBER"][np.argmin(np.abs(cat["X_IMAGE"] - 81))])
    result = run(run_script, tmp_path, image, catalog, seg, "--psf", psf, "--numbers", disc)
    assert result.status == 0, result.err
    assert result.table.nrows == 1 and result.table["MORPH_FLAG"][0] == 0
    assert result.table["SERSIC_N"][0] == pytest.approx(1.0, abs=0.3)  # the PSF is deconvolved
