"""forced_photometry: SExtractor's dual-image mode, colours of sources of known colour, the
red sequence, neighbours, weights, and every bad input with its message."""

import numpy as np
import pytest
from astropy.io import fits

import forced_photometry
import sep_extract
from astro_catalogs import read_catalog, write_catalog
from conftest import data_path
from test_catalog_join import make_catalog  # noqa: I100,I201


def run(run_script, tmp_path, *argv, name="out.tab"):
    out = tmp_path / name
    result = run_script(forced_photometry, [*argv, "--output", out])
    result.catalog = read_catalog(str(out)) if result.status == 0 else None
    result.path = out
    return result


def test_equals_sextractor_dual_image_mode(run_script, tmp_path):
    """SExtractor 2.25 `source-extractor sep_image.fits,sep_measure.fits` (committed with its
    configuration): our forced photometry of its detection catalog in the measurement
    image gives the same fluxes."""
    result = run(run_script, tmp_path, "--catalog", data_path("sextractor_dual_detection.cat"),
                 "--image", data_path("sep_measure.fits"), "--apertures", "5,10,20")
    assert result.status == 0, result.err
    ours = result.catalog
    theirs = read_catalog(data_path("sextractor_dual_measure.cat"))
    np.testing.assert_array_equal(ours["NUMBER"], theirs["NUMBER"])
    assert ours.nrows == 65

    def p90(a, b):
        return np.percentile(np.abs(a / b - 1), 90)

    assert p90(ours["FLUX_AUTO_i"], theirs["FLUX_AUTO"]) < 1e-4
    assert p90(ours["FLUXERR_AUTO_i"], theirs["FLUXERR_AUTO"]) < 1e-3
    assert np.percentile(np.abs(ours["MAG_AUTO_i"] - theirs["MAG_AUTO"]), 90) < 1e-3
    for ours_name, their_name in (("FLUX_APER_i", "FLUX_APER"), ("FLUX_APER_i_2", "FLUX_APER_2"),
                                  ("FLUX_APER_i_3", "FLUX_APER_3"),
                                  ("FLUXERR_APER_i", "FLUXERR_APER")):
        assert p90(ours[ours_name], theirs[their_name]) < 1e-4, ours_name
    np.testing.assert_allclose(ours["BACKGROUND_i"], theirs["BACKGROUND"], rtol=1e-3)
    # FLAGS bit 16 where SExtractor's scanning boxes (Kron radius, AUTO ellipse, the
    # FLUX_APER circles) leave the image: 12 objects, sep's own aperture flag had 3
    np.testing.assert_array_equal(ours["FLAGS_i"] & 16, theirs["FLAGS"].astype(int) & 16)
    assert (theirs["FLAGS"].astype(int) & 16).astype(bool).sum() == 12
    # every input column is kept as it came in, the band is named from the header
    assert list(ours)[:len(theirs)] == list(theirs)
    assert "band i: zero point 0" in result.out


def sources_of_known_colour(tmp_path, colour=0.8):
    """Two bands of the same Gaussian sources: g = r x 10^(-0.4 colour), plus noise."""
    rng = np.random.default_rng(11)
    shape = (200, 200)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r_band = np.zeros(shape)
    positions = [(40, 40), (150, 50), (60, 150), (140, 140), (100, 95)]
    for (x, y), flux in zip(positions, (4e4, 2e4, 3e4, 1e4, 5e4)):
        r_band += flux / (2 * np.pi * 2.0 ** 2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
    g_band = r_band * 10 ** (-0.4 * colour)
    paths = {}
    for band, data in (("g", g_band), ("r", r_band)):
        noisy = (data + 100.0 + rng.normal(0, 2.0, shape)).astype(np.float32)
        paths[band] = tmp_path / f"{band}.fits"
        fits.PrimaryHDU(noisy, fits.Header([("MAGZP", 25.0)])).writeto(paths[band])
    return paths


def test_colours_of_sources_of_known_colour(run_script, tmp_path):
    paths = sources_of_known_colour(tmp_path)
    catalog = tmp_path / "r.tab"
    assert run_script(sep_extract, ["--image", paths["r"], "--catalog", catalog]).status == 0
    result = run(run_script, tmp_path, "--catalog", catalog, "--image", paths["g"], "--image",
                 paths["r"], "--band", "g", "--band", "r", "--apertures", "6",
                 "--colour-aperture", "6", "--cmd", tmp_path / "cmd.png")
    assert result.status == 0, result.err
    c = result.catalog
    assert c.nrows == 5
    assert np.all(np.abs(c["G_R"] - 0.8) < 3 * c["G_R_ERR"] + 1e-3)
    assert np.all(np.abs(c["G_R_APER"] - 0.8) < 3 * c["G_R_APER_ERR"] + 1e-3)
    assert np.all(c["FLAGS_g"] == 0) and "band g: zero point 25 (header MAGZP)" in result.out
    with open(tmp_path / "cmd.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_red_sequence_fit_is_written_to_the_log_the_header_and_a_column(tmp_path):
    rng = np.random.default_rng(2)
    mag = rng.uniform(17, 21, 60)
    colour = -0.05 * mag + 1.9 + rng.normal(0, 0.02, 60)
    colour[:6] = 0.3  # blue interlopers, clipped away
    galaxies = np.ones(60, dtype=bool)
    fit = forced_photometry.fit_red_sequence(mag, colour, galaxies, 17, 21)
    assert fit["slope"] == pytest.approx(-0.05, abs=0.01)
    assert fit["intercept"] == pytest.approx(1.9, abs=0.2)
    assert fit["members"] == 54 and not fit["member_mask"][:6].any()
    assert forced_photometry.fit_red_sequence(mag[:4], colour[:4], galaxies[:4], 17, 21) is None


def test_red_sequence_through_the_command_line(run_script, tmp_path):
    paths = sources_of_known_colour(tmp_path)
    catalog = tmp_path / "r.tab"
    run_script(sep_extract, ["--image", paths["r"], "--catalog", catalog])
    galaxies = read_catalog(str(catalog))
    galaxies["CLASS_STAR"] = np.zeros(galaxies.nrows)  # call the round blobs galaxies
    write_catalog(str(catalog), galaxies)
    result = run(run_script, tmp_path, "--catalog", catalog, "--image", paths["g"], "--image",
                 paths["r"], "--band", "g", "--band", "r", "--red-sequence", "10,20")
    assert result.status == 0, result.err
    assert "red sequence: colour = " in result.out and "5 members" in result.out
    assert "# red sequence: colour = " in result.path.read_text()
    assert list(result.catalog["RED_SEQUENCE"]) == [1] * 5


def test_neighbours_are_left_out_with_the_segmentation_map(run_script, tmp_path):
    seg = tmp_path / "seg.fits"
    catalog = tmp_path / "cat.tab"
    assert run_script(sep_extract, ["--image", data_path("sep_image.fits"), "--catalog",
                                    catalog, "--segmentation", seg,
                                    "--deblend-cont", "1", "--mask-type", "none"]).status == 0
    plain = run(run_script, tmp_path, "--catalog", catalog, "--image",
                data_path("sep_image.fits"), "--band", "R", name="plain.tab")
    alone = run(run_script, tmp_path, "--catalog", catalog, "--image",
                data_path("sep_image.fits"), "--band", "R", "--segmentation", seg,
                name="alone.tab")
    assert plain.status == alone.status == 0
    np.testing.assert_allclose(plain.catalog["FLUX_AUTO_R"],
                               read_catalog(str(catalog))["FLUX_AUTO"], rtol=1e-6)
    changed = np.abs(alone.catalog["FLUX_AUTO_R"] / plain.catalog["FLUX_AUTO_R"] - 1) > 1e-3
    assert 0 < changed.sum() < plain.catalog.nrows  # only objects with neighbours change


def test_a_variance_map_equal_to_the_sky_gives_the_same_errors(run_script, tmp_path):
    image = data_path("sep_image.fits")
    catalog = tmp_path / "cat.tab"
    run_script(sep_extract, ["--image", image, "--catalog", catalog])
    variance = tmp_path / "var.fits"
    rms = 65.4617  # sep's global RMS of this image
    fits.PrimaryHDU(np.full((256, 256), rms ** 2, dtype=np.float32)).writeto(variance)
    weighted = run(run_script, tmp_path, "--catalog", catalog, "--image", image, "--band", "R",
                   "--weight", variance, "--weight-type", "map_var")
    plain = read_catalog(str(catalog))
    np.testing.assert_allclose(weighted.catalog["FLUXERR_AUTO_R"], plain["FLUXERR_AUTO"],
                               rtol=1e-4)
    inverse = tmp_path / "w.fits"
    fits.PrimaryHDU(np.full((256, 256), 7.0, dtype=np.float32)).writeto(inverse)  # relative
    scaled = run(run_script, tmp_path, "--catalog", catalog, "--image", image, "--band", "R",
                 "--weight", inverse, "--weight-type", "map_weight", name="w.tab")
    np.testing.assert_allclose(scaled.catalog["FLUXERR_AUTO_R"], plain["FLUXERR_AUTO"],
                               rtol=1e-4)


def test_zero_objects_is_a_valid_result(run_script, tmp_path):
    empty = tmp_path / "empty.tab"
    catalog = make_catalog([])
    catalog["X_IMAGE"], catalog["Y_IMAGE"] = np.zeros(0), np.zeros(0)
    write_catalog(str(empty), catalog)
    result = run(run_script, tmp_path, "--catalog", empty, "--image",
                 data_path("sep_measure.fits"), "--apertures", "5")
    assert result.status == 0, result.err
    assert result.catalog.nrows == 0 and "FLUX_AUTO_i" in result.catalog
    assert "FLUX_APER_i" in result.catalog


def shifted_wcs_image(tmp_path):
    data = fits.getdata(data_path("cube_grz.fits"))[1]
    header = fits.getheader(data_path("cube_grz.fits"))
    header["CRPIX1"] += 3.0  # the same sky, 3 px off
    for key in ("NAXIS3", "CTYPE3", "BANDS", "BAND0", "BAND1", "BAND2"):
        header.remove(key, ignore_missing=True)
    path = tmp_path / "shifted.fits"
    fits.PrimaryHDU(data, header).writeto(path)
    return path


@pytest.mark.parametrize("case, message", [
    ("shape", "Error: band z: the image is 120 x 100 pixels but the first is 256 x 256; "
              "resample the images to one pixel grid first"),
    ("wcs", "Error: band r: the catalog's objects land 3.0 px away from their X_IMAGE/Y_IMAGE"),
    ("columns", "Error: the catalog lacks the column(s) X_IMAGE, Y_IMAGE"),
    ("repeat", "Error: band name(s) i repeat; each image needs its own band name"),
    ("count", "Error: --band was given 1 time(s) for 2 image(s)"),
    ("noname", "Error: image 1 has no band name: give --band"),
    ("badname", "Error: image 1: band name 'r band' (from the --band) may hold only letters"),
    ("aperture", "Error: --colour-aperture 7 is not one of --apertures (5, 10)"),
    ("oneband", "Error: a colour-magnitude diagram needs at least two bands"),
    ("weight", "Error: the weight map has no usable pixel: every value is bad for MAP_VAR"),
    ("weightshape", "Error: the weight of band i is 120 x 100 pixels but the image is 256 x 256"),
    ("range", "Error: --red-sequence '21,17': the bright limit must be below the faint"),
])
def test_bad_inputs(run_script, tmp_path, case, message):
    measure = data_path("sep_measure.fits")
    catalog = data_path("sextractor_dual_detection.cat")
    zero = tmp_path / "zero.fits"
    fits.PrimaryHDU(np.zeros((256, 256), dtype=np.float32)).writeto(zero)
    no_band = tmp_path / "noband.fits"
    fits.PrimaryHDU(fits.getdata(measure)).writeto(no_band)
    argv = {
        "shape": ["--catalog", catalog, "--image", measure, "--image",
                  data_path("mask_wrong_shape.fits"), "--band", "i", "--band", "z"],
        "wcs": ["--catalog", data_path("cube_grz_r.tabular"), "--image",
                shifted_wcs_image(tmp_path), "--band", "r"],
        "columns": ["--catalog", data_path("sep_cold_clusex.cat"), "--image", measure],
        "repeat": ["--catalog", catalog, "--image", measure, "--image", measure],
        "count": ["--catalog", catalog, "--image", measure, "--image", measure, "--band", "i"],
        "noname": ["--catalog", catalog, "--image", no_band],
        "badname": ["--catalog", catalog, "--image", measure, "--band", "r band"],
        "aperture": ["--catalog", catalog, "--image", measure, "--apertures", "5,10",
                     "--colour-aperture", "7"],
        "oneband": ["--catalog", catalog, "--image", measure, "--cmd", tmp_path / "c.png"],
        "weight": ["--catalog", catalog, "--image", measure, "--weight", zero],
        "weightshape": ["--catalog", catalog, "--image", measure, "--weight",
                        data_path("mask_wrong_shape.fits")],
        "range": ["--catalog", catalog, "--image", measure, "--red-sequence", "21,17"],
    }[case]
    result = run(run_script, tmp_path, *argv)
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err
    assert not result.path.exists()
