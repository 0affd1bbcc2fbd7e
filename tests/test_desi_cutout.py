"""desi_cutout against a local imitation of the Legacy Surveys service (no internet), and a
live smoke test that runs only where the real service answers."""

import os
import socket

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

import desi_cutout
import fake_legacy_service
from astro_catalogs import read_catalog, write_catalog
from test_catalog_join import at, make_catalog  # noqa: I100,I201


@pytest.fixture(scope="module")
def service():
    server, url = fake_legacy_service.start_server()
    yield url
    server.shutdown()


@pytest.fixture
def env(service, monkeypatch):
    monkeypatch.setenv("DESI_LEGACY_BASE_URL", service)
    monkeypatch.setenv("DESI_LEGACY_RETRY_DELAY", "0.01")
    monkeypatch.setenv("DESI_LEGACY_TIMEOUT", "10")
    return service


def fetch(run_script, tmp_path, *argv):
    out = tmp_path / "out"
    result = run_script(desi_cutout, ["--output-dir", out, *argv])
    result.dir = out
    return result


def test_cube_split_into_bands_with_wcs_units_and_zero_point(run_script, tmp_path, env):
    result = fetch(run_script, tmp_path, "--ra", "150.1", "--dec", "2.2", "--size", "128",
                   "--layer", "ls-dr10", "--bands", "grz", "--fits", "--jpeg")
    assert result.status == 0, result.err
    assert sorted(os.listdir(result.dir)) == ["color.jpg", "g.fits", "r.fits", "z.fits"]
    planes = {}
    for band in "grz":
        with fits.open(result.dir / f"{band}.fits") as hdul:
            assert len(hdul) == 1 and hdul[0].data.shape == (128, 128)
            header = hdul[0].header
            planes[band] = hdul[0].data.astype(float)
        assert header["NAXIS"] == 2 and "NAXIS3" not in header
        assert header["BAND"] == band and header["BUNIT"] == "nanomaggy"
        assert header["MAGZP"] == 22.5 and header["LAYER"] == "ls-dr10"
        url = "".join(str(header[k]) for k in sorted(header) if k.startswith("SRCURL"))
        assert "fits-cutout?ra=150.1000000&dec=2.2000000&layer=ls-dr10" in url
        world = WCS(header).pixel_to_world_values(63.5, 63.5)
        np.testing.assert_allclose(world, (150.1, 2.2), atol=1e-6)
    np.testing.assert_allclose(planes["z"], 3 * planes["g"], rtol=1e-5)
    assert (result.dir / "color.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_sexagesimal_position_and_rebinned_zero_point(run_script, tmp_path, env):
    result = fetch(run_script, tmp_path, "--ra", "10:21:33.2", "--dec", "+12:03:11",
                   "--width", "60", "--height", "40", "--pixscale", "0.524", "--bands", "r")
    assert result.status == 0, result.err
    header = fits.getheader(result.dir / "r.fits")
    assert (header["NAXIS1"], header["NAXIS2"]) == (60, 40)
    assert header["CRVAL1"] == pytest.approx(155.3883333, abs=1e-6)
    assert header["CRVAL2"] == pytest.approx(12.0530556, abs=1e-6)
    # surface brightness is kept when rebinning: ZP = 22.5 - 5 log10(0.524 / 0.262)
    assert header["MAGZP"] == pytest.approx(22.5 - 5 * np.log10(2), abs=1e-6)


def test_the_fits_feeds_source_extraction(run_script, tmp_path, env):
    import sep_extract
    fetch(run_script, tmp_path, "--ra", "150", "--dec", "2", "--bands", "r")
    result = run_script(sep_extract, ["--image", tmp_path / "out" / "r.fits", "--catalog",
                                      tmp_path / "cat.tab"])
    assert result.status == 0, result.err
    assert "zero point 22.5 (header MAGZP)" in result.out


def test_retry_after_a_503(run_script, tmp_path, env):
    result = fetch(run_script, tmp_path, "--ra", "300.5", "--dec", "10", "--bands", "g")
    assert result.status == 0, result.err
    assert "attempt 1 failed: HTTP 503" in result.out


def test_table_mode_one_stamp_per_row(run_script, tmp_path, env):
    table = tmp_path / "table.tab"
    write_catalog(str(table), make_catalog([at(10, 10, NUMBER=4, ALPHA_J2000=150.0,
                                               DELTA_J2000=2.0, KRON_RADIUS=3.0, A_IMAGE=4.0),
                                            at(20, 20, NUMBER=9, ALPHA_J2000=150.01,
                                               DELTA_J2000=2.01, KRON_RADIUS=3.0,
                                               A_IMAGE=1.0)]))
    result = fetch(run_script, tmp_path, "--table", table, "--jpeg")  # stamp scale 4
    assert result.status == 0, result.err
    assert sorted(os.listdir(result.dir)) == ["stamp_00004_color.jpg", "stamp_00009_color.jpg"]
    from PIL import Image
    assert Image.open(result.dir / "stamp_00004_color.jpg").size == (48, 48)  # 4 x 3 x 4
    assert Image.open(result.dir / "stamp_00009_color.jpg").size == (32, 32)  # at least 32
    fixed = fetch(run_script, tmp_path, "--table", table, "--jpeg", "--stamp-scale", "0",
                  "--size", "40")
    assert Image.open(fixed.dir / "stamp_00004_color.jpg").size == (40, 40)


@pytest.mark.parametrize("argv, status, message", [
    (["--ra", "150", "--dec", "-85"], 3,
     "Error: the Legacy Surveys service failed 3 times: HTTP 500 (Internal Server Error); "
     "the position may be outside the survey footprint"),
    (["--ra", "150", "--dec", "-85", "--jpeg"], 3, "Error: the colour image is blank: the "
     "position is outside the survey footprint"),
    (["--ra", "150", "--dec", "2", "--layer", "ls-dr9", "--bands", "gri"], 2,
     "Error: bands 'gri' are not valid for layer ls-dr9 (valid: g, r, z, each once)"),
    (["--ra", "150", "--dec", "2", "--size", "4000"], 2,
     "Error: --size must be between 1 and 3000 pixels (got 4000)"),
    (["--ra", "10h", "--dec", "north"], 2, "Error: cannot read the position '10h north'"),
    (["--ra", "400", "--dec", "2"], 2, "Error: position RA 400.0, Dec 2.0 is out of range"),
    (["--dec", "2"], 2, "Error: give --ra and --dec, or a --table of positions"),
])
def test_failures(run_script, tmp_path, env, argv, status, message):
    result = fetch(run_script, tmp_path, *argv)
    assert result.status == status
    assert result.err.strip().splitlines()[-1].startswith(message), result.err


def test_blank_jpeg_outside_the_footprint(run_script, tmp_path, env):
    body = fake_legacy_service.jpeg_answer(64, 64, blank=True)
    with pytest.raises(desi_cutout.ServiceError, match="outside the survey footprint"):
        desi_cutout.save_jpeg(body, str(tmp_path), "x.jpg")


def test_unknown_layer_html_answer(run_script, tmp_path, env, monkeypatch):
    # the tool validates layers itself; the service's own answer is still recognised
    monkeypatch.setitem(desi_cutout.LAYER_BANDS, "ls-dr11", "grz")
    result = fetch(run_script, tmp_path, "--ra", "150", "--dec", "2", "--layer", "ls-dr11")
    assert result.status == 3
    assert "the service answered with text, not a FITS image: '<html>No such layer: " \
        "ls-dr11</html>' (unknown layer 'ls-dr11'?)" in result.err


def test_slow_service_times_out(run_script, tmp_path, env, monkeypatch):
    monkeypatch.setenv("DESI_LEGACY_TIMEOUT", "0.3")
    monkeypatch.setenv("FAKE_LEGACY_DELAY", "1")
    result = fetch(run_script, tmp_path, "--ra", "301.5", "--dec", "2", "--bands", "g")
    assert result.status == 3
    assert "failed 3 times: no answer" in result.err


def test_service_down(run_script, tmp_path, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DESI_LEGACY_BASE_URL", f"http://127.0.0.1:{port}/viewer")
    monkeypatch.setenv("DESI_LEGACY_RETRY_DELAY", "0.01")
    result = fetch(run_script, tmp_path, "--ra", "150", "--dec", "2")
    assert result.status == 3 and "no answer" in result.err


def test_table_errors(run_script, tmp_path, env):
    table = tmp_path / "t.tab"
    write_catalog(str(table), make_catalog([at(1, 1, ALPHA_J2000=np.nan)] * 2))
    result = fetch(run_script, tmp_path, "--table", table)
    assert result.status == 2 and "row 1 has no valid position" in result.err
    result = fetch(run_script, tmp_path, "--table", table, "--max-rows", "1")
    assert result.status == 2 and "the table has 2 rows, more than the 1 stamps" in result.err
    result = fetch(run_script, tmp_path, "--table", table, "--ra-column", "RA")
    assert result.status == 2 and "the table lacks the column(s) RA" in result.err


def live_service_reachable():
    try:
        socket.create_connection(("www.legacysurvey.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not live_service_reachable(), reason="no network: live service not reached")
def test_live_service_smoke(run_script, tmp_path, monkeypatch):
    monkeypatch.delenv("DESI_LEGACY_BASE_URL", raising=False)
    result = fetch(run_script, tmp_path, "--ra", "150.1", "--dec", "2.2", "--size", "64",
                   "--bands", "r", "--jpeg")
    assert result.status == 0, result.err
    assert fits.getdata(tmp_path / "out" / "r.fits").shape == (64, 64)


def test_a_row_outside_the_footprint_is_a_failed_row(run_script, tmp_path, env):
    """One row the service fails on is a failed row of the summary, not a failed job."""
    table = tmp_path / "table.tab"
    write_catalog(str(table), make_catalog([
        at(10, 10, NUMBER=4, ALPHA_J2000=150.0, DELTA_J2000=2.0),
        at(20, 20, NUMBER=7, ALPHA_J2000=150.0, DELTA_J2000=-85.0),  # outside: HTTP 500
        at(30, 30, NUMBER=9, ALPHA_J2000=150.01, DELTA_J2000=2.01)]))
    summary = tmp_path / "summary.tabular"
    result = fetch(run_script, tmp_path, "--table", table, "--bands", "g", "--summary", summary)
    assert result.status == 0, result.err
    assert sorted(os.listdir(result.dir)) == ["stamp_00004_g.fits", "stamp_00009_g.fits"]
    rows = read_catalog(str(summary))
    assert list(rows["ID"]) == [4, 7, 9] and list(rows["STATUS"]) == ["ok", "failed", "ok"]
    assert rows["MESSAGE"][1].startswith("the Legacy Surveys service failed 3 times: HTTP 500")
    assert "wrote stamps of 2 objects" in result.out and "1 failed (see the summary)" in result.out


def test_every_row_failing_fails_the_job(run_script, tmp_path, env):
    table = tmp_path / "table.tab"
    write_catalog(str(table), make_catalog([at(1, 1, ALPHA_J2000=150.0, DELTA_J2000=-85.0)]))
    result = fetch(run_script, tmp_path, "--table", table, "--bands", "g")
    assert result.status == 3
    assert result.err.strip().startswith("Error: every stamp failed; the first: the Legacy")
