"""catalog_export: CluSex's 15 header-less columns and SExtractor's ASCII_HEAD, read back
through the suite's own reader."""

import numpy as np
import pytest

import catalog_export
import sep_extract
from astro_catalogs import CLUSEX_COLUMNS, read_catalog
from conftest import data_path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "cat.tab"
    sep_extract.main(["--image", data_path("mosaic3_z_ccd3.fits"), "--catalog", str(path),
                      "--deblend-cont", "1", "--seeing-fwhm", "1.3", "--zeropoint", "26.2876"])
    return path


@pytest.mark.parametrize("kind", ["clusex", "sextractor"])
def test_round_trip(run_script, tmp_path, catalog, kind):
    out = tmp_path / "export.cat"
    result = run_script(catalog_export, ["--catalog", catalog, "--format", kind, "--output",
                                         out])
    assert result.status == 0, result.err
    original, back = read_catalog(str(catalog)), read_catalog(str(out))
    assert list(back) == list(CLUSEX_COLUMNS) and back.nrows == original.nrows == 9
    tolerance = {"ALPHA_J2000": 2e-7, "DELTA_J2000": 2e-7, "THETA_IMAGE": 0.05,
                 "KRON_RADIUS": 0.005, "CLASS_STAR": 5e-4, "ELLIPTICITY": 5e-4,
                 "A_IMAGE": 5e-4, "FLUX_RADIUS": 5e-4, "MAG_BEST": 5e-5,
                 "BACKGROUND": 1e-3}
    for name in CLUSEX_COLUMNS:
        np.testing.assert_allclose(back[name], original[name], atol=tolerance.get(name, 0),
                                   rtol=1e-6, err_msg=name)
    if kind == "sextractor":
        assert out.read_text().startswith("#   1 NUMBER")
    else:
        assert not out.read_text().startswith("#")
    assert "wrote 9 objects" in result.out


def test_a_catalog_without_class_star(run_script, tmp_path):
    out = tmp_path / "x.cat"
    result = run_script(catalog_export, ["--catalog", data_path("sep_hot.tabular"), "--output",
                                         out])
    assert result.status == 2 and not out.exists()
    assert result.err.strip() == ("Error: the catalog lacks CLASS_STAR, which DGCG selects "
                                  "galaxies with: make it with Extract sources (it computes "
                                  "CLASS_STAR)")


def test_clusex_catalogs_pass_through(run_script, tmp_path):
    out = tmp_path / "x.cat"
    result = run_script(catalog_export, ["--catalog", data_path("sep_cold_clusex.cat"),
                                         "--output", out])
    assert result.status == 0, result.err
    back, original = read_catalog(str(out)), read_catalog(data_path("sep_cold_clusex.cat"))
    for name in CLUSEX_COLUMNS:
        np.testing.assert_allclose(back[name], original[name], rtol=1e-6, err_msg=name)
