"""Every class of bad or unusual input answered: one clear line and a non-zero exit, or the
right answer; nothing lost on the way through a tool; nothing left behind by a failed job."""

import bz2
import gzip
import http.client
import shutil

import numpy as np
import pytest
from astropy.io import fits

import catalog_join
import catalog_to_regions
import desi_cutout
import ellipse_overlay
import fake_legacy_service
import mask_build
import sep_extract
import sky_compute
from astro_catalogs import read_catalog, write_catalog
from astro_images import read_image
from astro_regions import read_regions
from conftest import data_path
from test_catalog_join import at, make_catalog  # noqa: I100,I201

IMAGE = data_path("sep_image.fits")


def one_error_line(result, message):
    assert result.status != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err


def write_rows(tmp_path, rows, name="cat.tab"):
    path = tmp_path / name
    write_catalog(str(path), make_catalog(rows))
    return path


# --------------------------------------------------------------------------------------
# Catalog values that are not finite: one rule in the shared reader, every tool
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("column", ["KRON_RADIUS", "XPEAK_IMAGE", "A_IMAGE"])
@pytest.mark.parametrize("tool", ["sky", "mask", "join", "regions", "overlay"])
def test_non_finite_geometry_names_the_line_and_column(run_script, tmp_path, tool, column):
    value = np.inf if column == "A_IMAGE" else np.nan
    bad = write_rows(tmp_path, [at(30, 30), at(60, 60, **{column: value})])
    out = tmp_path / "out"
    argv = {
        "sky": (sky_compute, ["--image", IMAGE, "--catalog", bad, "--mask",
                              data_path("sep_hotcold_mask.fits"), "--output", out]),
        "mask": (mask_build, ["--image", IMAGE, "--catalog", bad, "--output", out]),
        "join": (catalog_join, ["--catalog1", bad, "--catalog2", bad, "--output", out]),
        "regions": (catalog_to_regions, ["--catalog", bad, "--output", out]),
        "overlay": (ellipse_overlay, ["--image", IMAGE, "--catalog", bad, "--ellipse",
                                      "clusex", "--peak", "--output", out]),
    }[tool]
    result = run_script(*argv)
    assert result.status == 2
    assert "line 3 has a NaN or infinite " + column in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists()


def test_desi_table_with_a_nan_kron_radius(run_script, tmp_path):
    table = write_rows(tmp_path, [at(1, 1), at(2, 2, KRON_RADIUS=np.nan)])
    result = run_script(desi_cutout, ["--table", table, "--output-dir", tmp_path / "o"])
    one_error_line(result, "Error: the table: line 3 has a NaN or infinite KRON_RADIUS")


def test_objects_outside_the_image_are_flagged(run_script, tmp_path):
    catalog = write_rows(tmp_path, [at(100, 100), at(5000, 100), at(-20, 40)])
    out = tmp_path / "sky.tab"
    result = run_script(sky_compute, ["--image", IMAGE, "--catalog", catalog, "--mask",
                                      data_path("sep_hotcold_mask.fits"), "--output", out])
    assert result.status == 0, result.err
    sky = read_catalog(str(out))
    np.testing.assert_array_equal(sky["SKY_FLAG"], [0, 3, 3])
    assert np.isnan(sky["BACKGROUND"][1]) and "2 outside the image (flag 3)" in result.out


# --------------------------------------------------------------------------------------
# Nothing lost: columns a tool does not compute come out exactly as they came in
# --------------------------------------------------------------------------------------

PASSED_THROUGH = {
    "OBJID": ["4295807123456789012", "9000000000000000001"],
    "ALPHAWIN_J2000": ["150.12345678912345", "150.22222222222222"],
    "MJD": ["57466.3320138889", "57466.332013889"],
    "FIELD": ["COSMOS-1", "COSMOS 2"],
    "ZP_CALIB": ["25.000", "24.9100"],  # numbers written with trailing zeros keep them
}


def catalog_with_extras(tmp_path):
    base = make_catalog([at(30, 30, KRON_RADIUS=2.0), at(120, 80, KRON_RADIUS=2.0)])
    names = list(base) + list(PASSED_THROUGH)
    lines = ["#" + "\t".join(names)]
    for row in range(2):
        values = [repr(v) if isinstance(v, float) else str(v)
                  for v in (base[n].tolist()[row] for n in base)]
        lines.append("\t".join(values + [PASSED_THROUGH[n][row] for n in PASSED_THROUGH]))
    path = tmp_path / "extras.tab"
    path.write_text("\n".join(lines) + "\n")
    return path


def column_text(path, name):
    lines = path.read_text().splitlines()
    index = lines[0].lstrip("#").split("\t").index(name)
    return [line.split("\t")[index] for line in lines[1:]]


@pytest.mark.parametrize("tool", ["join", "sky"])
def test_unknown_columns_come_out_exactly_as_they_came_in(run_script, tmp_path, tool):
    source = catalog_with_extras(tmp_path)
    out = tmp_path / "out.tab"
    if tool == "join":
        cold = write_rows(tmp_path, [at(200, 200)], "cold.tab")
        result = run_script(catalog_join, ["--catalog1", source, "--catalog2", cold,
                                           "--output", out, "--mode", "add"])
    else:
        result = run_script(sky_compute, ["--image", IMAGE, "--catalog", source, "--mask",
                                          data_path("sep_hotcold_mask.fits"), "--output", out])
    assert result.status == 0, result.err
    for name, values in PASSED_THROUGH.items():
        assert column_text(out, name)[:2] == values, name
    if tool == "join":  # the added row has no value for catalog 1's extra columns
        assert column_text(out, "OBJID")[2] == "nan"
        assert column_text(out, "FIELD")[2] == "nan"


def test_fits_table_text_columns_are_kept(tmp_path):
    from astropy.table import Table
    table = Table({"NUMBER": [1, 2], "NAME": ["a b", "c"], "X": [1.5, 2.5]})
    path = tmp_path / "t.fits"
    table.write(path)
    catalog = read_catalog(str(path))
    assert list(catalog["NAME"]) == ["a b", "c"] and catalog["NUMBER"].dtype.kind == "i"


# --------------------------------------------------------------------------------------
# Headers and formats of real files
# --------------------------------------------------------------------------------------

def test_duplicated_keywords_and_an_unparsable_card(run_script, tmp_path):
    """A DES coadd repeats CHECKSUM/DATASUM; a hand-edited header may hold MAGZP = 25.0.1."""
    data = fits.getdata(IMAGE)
    header = fits.Header()
    header.append(("CHECKSUM", "AAAA", "first"))
    header.append(("DATASUM", "1", ""))
    header.append(("CHECKSUM", "BBBB", "again"))
    header.append(("DATASUM", "2", ""))
    header["MAGZP"] = ("25.0.1", "broken")
    path = tmp_path / "des.fits"
    fits.PrimaryHDU(data, header).writeto(path)
    raw = path.read_bytes()  # astropy would fix the card on writing: break it by hand
    path.write_bytes(raw.replace(b"MAGZP   = '25.0.1  '", b"MAGZP   = 25.0.1    "))
    out = tmp_path / "cat.tab"
    result = run_script(sep_extract, ["--image", path, "--catalog", out, "--segmentation",
                                      tmp_path / "seg.fits"])
    assert result.status == 0, result.err
    assert "detected 69 objects" in result.out
    assert "zero point 0 (default; no MAGZP/PHOTZP in the header)" in result.out
    seg_header = fits.getheader(tmp_path / "seg.fits")
    assert "CHECKSUM" not in seg_header
    assert any("unreadable card dropped: MAGZP" in str(c) for c in seg_header["COMMENT"])


@pytest.mark.parametrize("opener, suffix", [(gzip.open, ".fits.gz"), (bz2.open, ".fits.bz2")])
def test_compressed_fits_files(tmp_path, opener, suffix):
    path = tmp_path / ("image" + suffix)
    with open(IMAGE, "rb") as raw, opener(path, "wb") as packed:
        shutil.copyfileobj(raw, packed)
    image = read_image(str(path))
    assert image.shape == (256, 256)
    np.testing.assert_array_equal(image.data, fits.getdata(IMAGE).astype(np.float32))


def test_compressed_file_that_is_not_fits(tmp_path):
    path = tmp_path / "notes.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"just text")
    with pytest.raises(sep_extract.ToolError, match="compressed file that holds no FITS"):
        read_image(str(path))


def test_length_one_axes_are_dropped(tmp_path):
    path = tmp_path / "radio.fits"
    fits.PrimaryHDU(fits.getdata(IMAGE)[None, None]).writeto(path)  # (1, 1, ny, nx)
    assert read_image(str(path)).shape == (256, 256)


# --------------------------------------------------------------------------------------
# Parameters the forms allow
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("module, argv, message", [
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--thresh", "nan"],
     "Error: --thresh must be a finite number (got nan)"),
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--thresh", "inf"],
     "Error: --thresh must be a finite number (got inf)"),
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--thresh", "-5", "--err-model",
                   "none"], "Error: --thresh must be positive (got -5.0); with --err-model none"),
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--zeropoint", "nan"],
     "Error: --zeropoint must be a finite number (got nan)"),
    (sep_extract, ["--image", IMAGE, "--catalog", "{out}", "--minarea", "2.5"],
     "Error: --minarea must be a whole number (got '2.5')"),
    (sky_compute, ["--image", IMAGE, "--catalog", data_path("sep_hotcold.tabular"), "--mask",
                   data_path("sep_hotcold_mask.fits"), "--output", "{out}", "--seed", "-1"],
     "Error: --seed must not be negative (got -1)"),
    (ellipse_overlay, ["--image", IMAGE, "--output", "{out}", "--percentiles", "99", "1"],
     "Error: --percentiles: the lower limit 99 must be below the upper limit 1"),
    (ellipse_overlay, ["--image", IMAGE, "--output", "{out}", "--percentiles", "1", "120"],
     "Error: --percentiles must be between 0 and 100 (got 120.0)"),
    (ellipse_overlay, ["--image", IMAGE, "--output", "{out}", "--cmap", "rainbowish"],
     "Error: --cmap: invalid choice: 'rainbowish'"),
    (mask_build, ["--catalog", data_path("sep_hotcold.tabular"), "--image", IMAGE, "--output",
                  "{out}", "--regions", "/no/such.reg"],
     "Error: --regions: file '/no/such.reg' not found"),
])
def test_parameter_values_the_forms_allow(run_script, tmp_path, module, argv, message):
    result = run_script(module, [a.replace("{out}", str(tmp_path / "out")) for a in argv])
    assert result.status == 2
    one_error_line(result, message)


# --------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------

def test_a_mask_that_covers_everything(run_script, tmp_path):
    mask = tmp_path / "all.fits"
    fits.PrimaryHDU(np.ones((256, 256), dtype=np.uint8)).writeto(mask)
    result = run_script(sep_extract, ["--image", IMAGE, "--catalog", tmp_path / "c.tab",
                                      "--mask", mask])
    one_error_line(result, "Error: every pixel of the image is masked")
    assert not (tmp_path / "c.tab").exists()


def test_a_mask_that_covers_most_pixels_is_warned_about(run_script, tmp_path):
    mask = np.ones((256, 256), dtype=np.uint8)
    mask[:20, :20] = 0  # a weight map given as a mask: only the bad corner is "good"
    path = tmp_path / "weight_as_mask.fits"
    fits.PrimaryHDU(mask).writeto(path)
    result = run_script(sep_extract, ["--image", IMAGE, "--catalog", tmp_path / "c.tab",
                                      "--mask", path])
    assert result.status == 0, result.err
    assert "(99.4 % of the image)" in result.out and "is the mask inverted" in result.out


@pytest.mark.parametrize("number, text", [(0, "NUMBER 0"), (2 ** 31 + 5, "NUMBER 2147483653")])
def test_mask_labels_that_cannot_be_labels(run_script, tmp_path, number, text):
    catalog = write_rows(tmp_path, [at(30, 30, NUMBER=number)])
    result = run_script(mask_build, ["--catalog", catalog, "--image", IMAGE, "--output",
                                     tmp_path / "m.fits"])
    one_error_line(result, f"Error: the catalog: line 2 has {text}; mask labels must be whole")


def test_a_binary_mask_is_nobody_s_own_pixels(run_script, tmp_path):
    """With a 0/1 mask, object 1's rings must not take every masked pixel as its own."""
    data = np.full((100, 100), 10.0, dtype=np.float32)
    data[:, 60:] = 1000.0  # masked bright half
    image, mask = tmp_path / "i.fits", tmp_path / "m.fits"
    fits.PrimaryHDU(data).writeto(image)
    fits.PrimaryHDU((data > 100).astype(np.uint8)).writeto(mask)
    catalog = write_rows(tmp_path, [at(50, 50, NUMBER=1, KRON_RADIUS=2.0, A_IMAGE=2.0)])
    out = tmp_path / "sky.tab"
    result = run_script(sky_compute, ["--image", image, "--catalog", catalog, "--mask", mask,
                                      "--output", out, "--ring-width", "5"])
    assert result.status == 0, result.err
    assert read_catalog(str(out))["BACKGROUND"][0] == pytest.approx(10.0)
    assert "the mask is 0/1" in result.out


# --------------------------------------------------------------------------------------
# Positions and regions
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("ra, dec, expected", [
    ("150.1", "+02:12:00", (150.1, 2.2)),
    ("10:00:24", "2.2", (150.1, 2.2)),
    ("10h00m24s", "-02d12m00s", (150.1, -2.2)),
])
def test_each_coordinate_is_read_on_its_own(ra, dec, expected):
    np.testing.assert_allclose(desi_cutout.parse_position(ra, dec), expected)


def test_region_file_with_a_bom_physical_coordinates_and_arcsec(tmp_path):
    path = tmp_path / "r.reg"
    path.write_bytes("\ufeffphysical\ncircle(110,120,10\")\nbox(20,30,4',2',0)\n"
                     .encode("utf-8"))
    regions = read_regions(str(path), pixel_scale=0.5, physical_offset=(-100.0, -100.0))
    assert regions[0].params == [10.0, 20.0, 20.0]           # LTV shift; 10" / 0.5"/px
    assert regions[1].params == [-80.0, -70.0, 480.0, 240.0, 0.0]


def test_arcsec_sizes_without_a_pixel_scale(tmp_path):
    path = tmp_path / "r.reg"
    path.write_text("image\ncircle(128,128,10\")\n")
    message = "line 2: the size '10\"' is in angular units but the image's pixel scale"
    with pytest.raises(sep_extract.ToolError, match=message):
        read_regions(str(path))


# --------------------------------------------------------------------------------------
# A failed job leaves nothing that looks like a result
# --------------------------------------------------------------------------------------

def test_failed_overlay_leaves_no_catalog_behind(run_script, tmp_path):
    catalog, seg = tmp_path / "c.tab", tmp_path / "seg.fits"
    result = run_script(sep_extract, ["--image", IMAGE, "--catalog", catalog,
                                      "--segmentation", seg, "--overlay",
                                      tmp_path / "no" / "such" / "dir.png"])
    one_error_line(result, "Error: cannot write the output")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def service():
    server, url = fake_legacy_service.start_server()
    yield url
    server.shutdown()


@pytest.mark.parametrize("ra, message", [
    (302.5, "failed 3 times: the answer was cut off after"),
    (303.5, "failed 3 times: a broken answer (BadStatusLine"),
    (304.5, "failed 3 times: no answer (the answer did not finish in time)"),
])
def test_network_failures_are_retried_then_one_line(run_script, tmp_path, service,
                                                    monkeypatch, ra, message):
    monkeypatch.setenv("DESI_LEGACY_BASE_URL", service)
    monkeypatch.setenv("DESI_LEGACY_RETRY_DELAY", "0.01")
    monkeypatch.setenv("DESI_LEGACY_TIMEOUT", "5")
    monkeypatch.setenv("DESI_LEGACY_DEADLINE", "0.5")
    result = run_script(desi_cutout, ["--ra", ra, "--dec", "2", "--bands", "g",
                                      "--output-dir", tmp_path / "o"])
    assert result.status == 3
    one_error_line(result, f"Error: the Legacy Surveys service {message}")
    assert result.out.count("retrying") == 2
    assert not list((tmp_path / "o").iterdir())


def test_an_empty_answer_is_not_called_an_unknown_layer(run_script, tmp_path, service,
                                                        monkeypatch):
    monkeypatch.setenv("DESI_LEGACY_BASE_URL", service)
    result = run_script(desi_cutout, ["--ra", "305.5", "--dec", "2", "--bands", "g",
                                      "--output-dir", tmp_path / "o"])
    one_error_line(result, "Error: the service answered with an empty body")
    assert "unknown layer" not in result.err


def test_http_client_errors_are_the_ones_caught():
    assert issubclass(http.client.IncompleteRead, http.client.HTTPException)
    assert issubclass(http.client.BadStatusLine, http.client.HTTPException)


@pytest.mark.parametrize("compression", ["lzw", "zstd", "deflate"])
def test_compressed_tiffs(tmp_path, compression):
    import tifffile
    data = fits.getdata(IMAGE).astype(np.float32)
    path = tmp_path / f"{compression}.tiff"
    tifffile.imwrite(path, data, compression=compression)
    np.testing.assert_array_equal(read_image(str(path)).data, data)


def test_grey_and_alpha_tiff_uses_the_grey_channel(tmp_path):
    import tifffile
    grey = (fits.getdata(IMAGE) // 256).astype(np.uint8)
    path = tmp_path / "grey_alpha.tiff"
    tifffile.imwrite(path, np.stack([grey, np.full_like(grey, 255)], axis=-1),
                     photometric="minisblack", extrasamples=["unassalpha"])
    image = read_image(str(path))
    np.testing.assert_array_equal(image.data, grey.astype(np.float32))
    assert "grey channel" in image.description
