"""Every parameter check of every script: a one-line message and exit status 2, and the
validation of the cutout service's answers (exit status 3)."""

import io

import numpy as np
import pytest
from astropy.io import fits

import astro_photometry
import catalog_join
import catalog_to_regions
import desi_cutout
import ellipse_overlay
import mask_build
import sep_extract
import sky_compute
from astro_catalogs import write_catalog
from conftest import data_path
from test_catalog_join import at, make_catalog  # noqa: I100,I201

IMAGE = data_path("sep_image.fits")
CATALOG = data_path("sep_hotcold.tabular")
MASK = data_path("sep_hotcold_mask.fits")


@pytest.mark.parametrize("module, argv, message", [
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--gain", "-1"],
     "Error: --gain must not be negative (got -1.0)"),
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--thresh", "0"],
     "Error: --thresh must be positive (got 0.0)"),
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--filter", "/no/kernel.txt"],
     "Error: filter kernel file '/no/kernel.txt' not found"),
    (catalog_join, ["--catalog1", CATALOG, "--catalog2", CATALOG, "--output", "{out}",
                    "--seeing-fwhm", "-1"],
     "Error: --seeing-fwhm must not be negative (got -1.0)"),
    (catalog_to_regions, ["--catalog", CATALOG, "--output", "{out}", "--pixel-scale", "0"],
     "Error: --pixel-scale must be positive (got 0.0)"),
    (mask_build, ["--catalog", CATALOG, "--image", IMAGE, "--output", "{out}", "--sat-q", "2"],
     "Error: --sat-q must be between 0 and 1 (got 2.0)"),
    (mask_build, ["--catalog", CATALOG, "--image", IMAGE, "--output", "{out}", "--remove-at",
                  "900,900"], "Error: --remove-at 900,900 is outside the image"),
    (mask_build, ["--catalog", CATALOG, "--image", IMAGE, "--output", "{out}", "--remove-at",
                  "here"], "Error: --remove-at 'here': give X,Y in pixels"),
    (sky_compute, ["--image", IMAGE, "--catalog", CATALOG, "--mask", MASK, "--output", "{out}",
                   "--nbox", "0"],
     "Error: --nbox must be positive (got 0)"),
    (sky_compute, ["--image", IMAGE, "--catalog", CATALOG, "--mask", MASK, "--output", "{out}",
                   "--method", "boxes", "--box-size", "300"],
     "Error: --box-size 300 does not fit in the 256 x 256 image"),
    (ellipse_overlay, ["--image", IMAGE, "--output", "{out}", "--width-px", "50"],
     "Error: --width-px must be at least 100 and --dpi at least 10"),
    (desi_cutout, ["--ra", "150", "--dec", "2", "--output-dir", "{out}", "--pixscale", "90"],
     "Error: --pixscale must be between 0 and 60 arcsec (got 90.0)"),
    (desi_cutout, ["--ra", "150", "--dec", "2", "--output-dir", "{out}", "--width", "50"],
     "Error: give both --width and --height (or --size)"),
    (desi_cutout, ["--ra", "150", "--dec", "2", "--table", CATALOG, "--output-dir", "{out}"],
     "Error: give either --ra/--dec or --table, not both"),
    (desi_cutout, ["--table", CATALOG, "--output-dir", "{out}", "--max-rows", "5000"],
     "Error: --max-rows must be between 1 and 1000"),
])
def test_parameter_checks(run_script, tmp_path, module, argv, message):
    result = run_script(module, [a.replace("{out}", str(tmp_path / "out")) for a in argv])
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err


def test_remove_file_with_a_non_number(run_script, tmp_path):
    numbers = tmp_path / "remove.txt"
    numbers.write_text("3\nseven\n")
    result = run_script(mask_build, ["--catalog", CATALOG, "--image", IMAGE, "--output",
                                     tmp_path / "m.fits", "--remove-file", numbers])
    assert result.status == 2
    assert "the list of objects to remove, line 2: 'seven' is not an object NUMBER" in result.err


def test_table_without_rows_is_a_valid_empty_result(run_script, tmp_path):
    """An image with no detections gives a zero-row catalog: no stamps, no failure."""
    table = tmp_path / "empty.tab"
    write_catalog(str(table), make_catalog([]))
    result = run_script(desi_cutout, ["--table", table, "--output-dir", tmp_path / "o"])
    assert result.status == 0, result.err
    assert "wrote stamps of 0 objects" in result.out
    assert list((tmp_path / "o").iterdir()) == []


def test_remove_file_that_does_not_exist(run_script, tmp_path):
    result = run_script(mask_build, ["--catalog", CATALOG, "--image", IMAGE, "--output",
                                     tmp_path / "m.fits", "--remove-file", tmp_path / "no.txt"])
    assert result.status == 2
    assert result.err.strip() == f"Error: --remove-file: file '{tmp_path / 'no.txt'}' not found"
    assert not (tmp_path / "m.fits").exists()


def test_sep_errors_become_messages(monkeypatch):
    def broken():
        raise Exception("illegal value")
    with pytest.raises(sep_extract.ToolError, match="sep could not extract sources: illegal"):
        astro_photometry.run_sep(broken, "extract sources")

    def always_full():
        raise Exception("internal pixel buffer full")
    import sep
    old = sep.get_extract_pixstack()
    try:
        with pytest.raises(sep_extract.ToolError, match="needs more memory than allowed"):
            astro_photometry.run_sep(always_full, "extract sources")
    finally:
        sep.set_extract_pixstack(old)


def fits_bytes(data):
    buffer = io.BytesIO()
    fits.PrimaryHDU(data).writeto(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("body, bands, message", [
    (fits_bytes(np.zeros((2, 8, 8), np.float32)), "gr", "the cutout is blank"),
    (fits_bytes(np.ones((3, 8, 8), np.float32)), "gr", "asked for bands gr but the answer has 3"),
    (fits_bytes(None), "g", "the service's FITS answer holds no image"),
    (b"SIMPLE  =  garbage", "g", "the service's FITS answer is unreadable"),
])
def test_fits_answers_are_validated(body, bands, message):
    request = desi_cutout.CutoutRequest(layer="ls-dr10", bands=bands)
    with pytest.raises(desi_cutout.ServiceError, match=message):
        desi_cutout.read_fits_answer(body, request)


def test_jpeg_answers_are_validated(tmp_path):
    with pytest.raises(desi_cutout.ServiceError, match="is not a JPEG"):
        desi_cutout.save_jpeg(b"<html>oops</html>", str(tmp_path), "x.jpg")
    with pytest.raises(desi_cutout.ServiceError, match="the service's JPEG is unreadable"):
        desi_cutout.save_jpeg(b"\xff\xd8broken", str(tmp_path), "x.jpg")


def test_catalog_writer_keeps_rows(tmp_path):
    path = tmp_path / "c.tab"
    write_catalog(str(path), make_catalog([at(1, 2)]))
    assert path.read_text().count("\n") == 2
