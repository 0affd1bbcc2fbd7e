"""ellipse_overlay: pictures of the right size and content, every option, bad inputs."""

import numpy as np
import pytest
from PIL import Image

import ellipse_overlay
from conftest import data_path


def draw(run_script, tmp_path, *argv, name="o.png"):
    out = tmp_path / name
    result = run_script(ellipse_overlay, ["--output", out, *argv])
    result.path = out
    return result


def red_pixels(path):
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    return (pixels[..., 0] > 200) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)


def test_png_size_follows_the_width(run_script, tmp_path):
    result = draw(run_script, tmp_path, "--image", data_path("sep_image.fits"), "--catalog",
                  data_path("sep_hot.tabular"), "--width-px", "500", "--dpi", "50")
    assert result.status == 0, result.err
    with Image.open(result.path) as picture:
        assert picture.size == (500, int(10 * 0.92 * 50 + 0.6 * 50))


def test_ellipses_are_drawn_where_the_objects_are(run_script, tmp_path):
    """With a linear stretch of a blank image, only the ellipses are red."""
    from astropy.io import fits
    blank = tmp_path / "blank.fits"
    fits.PrimaryHDU(np.zeros((256, 256), dtype=np.float32)).writeto(blank)
    none = draw(run_script, tmp_path, "--image", blank, name="none.png")
    some = draw(run_script, tmp_path, "--image", blank, "--catalog",
                data_path("sep_hot.tabular"), "--ellipse", "clusex", "--peak", name="some.png")
    assert red_pixels(none.path).sum() < 50  # only the legend-free frame
    assert red_pixels(some.path).sum() > 500


def test_more_catalogs_regions_mask_labels_and_crop(run_script, tmp_path):
    result = draw(run_script, tmp_path, "--image", data_path("sep_image.fits"),
                  "--catalog", data_path("sep_hot.tabular"), "--catalog",
                  data_path("sep_cold.tabular"), "--catalog-label", "hot", "--regions",
                  data_path("user_regions.reg"), "--mask", data_path("sep_hotcold_mask.fits"),
                  "--labels", "--crop", "50", "150", "50", "150", "--stretch", "log",
                  "--title", "crop")
    assert result.status == 0, result.err
    assert "catalog 2: drawing 62 ellipses" in result.out
    assert "regions: 5 shape(s) from region file 1" in result.out


@pytest.mark.parametrize("stretch", ellipse_overlay.STRETCHES)
def test_every_stretch(run_script, tmp_path, stretch):
    result = draw(run_script, tmp_path, "--image", data_path("mosaic3_z_ccd3.fits"),
                  "--catalog", data_path("mosaic3_z.tabular"), "--stretch", stretch)
    assert result.status == 0, result.err


def test_pdf_with_wcs_axes_and_selection(run_script, tmp_path):
    result = draw(run_script, tmp_path, "--image", data_path("mosaic3_z_ccd3.fits"),
                  "--catalog", data_path("mosaic3_z.tabular"), "--max-mag", "20",
                  "--flags-below", "4", "--format", "pdf", name="o.dat")  # drops 1 blended
    assert result.status == 0, result.err
    assert result.path.read_bytes()[:5] == b"%PDF-"
    assert "catalog 1: drawing 4 ellipses" in result.out


def test_sextractor_style_axes():
    from astro_catalogs import read_catalog
    from astro_ellipses import shape_ellipses
    from astro_pictures import catalog_layer
    catalog = read_catalog(data_path("sep_hot.tabular"))
    layer = catalog_layer(catalog, shape_ellipses(catalog, k=6))
    np.testing.assert_allclose(layer["width"], 12 * catalog["A_IMAGE"])
    np.testing.assert_allclose(layer["x"], catalog["X_IMAGE"] - 1)


@pytest.mark.parametrize("argv, message", [
    (["--catalog", data_path("sep_image.cat")], "Error: the catalog lacks the column(s) THETA"),
    (["--mask", data_path("mask_wrong_shape.fits")], "Error: the mask is 120 x 100 pixels"),
    (["--regions", data_path("bad_regions.reg")], "Error: the region file, line 4: unknown"),
    (["--catalog", data_path("sep_hot.tabular"), "--max-mag", "20"],
     "Error: catalog 1 lacks the column(s) MAG_BEST"),
])
def test_bad_inputs(run_script, tmp_path, argv, message):
    if "--max-mag" in argv:  # a catalog without magnitudes
        path = tmp_path / "nomag.tab"
        lines = open(data_path("sep_hot.tabular")).read().replace("MAG_BEST", "MAG_X")
        path.write_text(lines)
        argv = ["--catalog", path, "--max-mag", "20"]
    result = draw(run_script, tmp_path, "--image", data_path("sep_image.fits"), *argv)
    assert result.status == 2
    assert result.err.strip().startswith(message), result.err


def test_block_average_is_the_mean_of_each_block():
    """The picture is drawn from block means (edge blocks over the pixels they have)."""
    from astro_pictures import block_average
    rng = np.random.default_rng(0)
    for ny, nx, factor in ((10, 10, 2), (11, 13, 3), (80, 81, 4), (5, 7, 7)):
        data = rng.random((ny, nx)).astype(np.float32)
        blocks = block_average(data, factor)
        expected = [[data[i * factor:(i + 1) * factor, j * factor:(j + 1) * factor].mean()
                     for j in range(-(-nx // factor))] for i in range(-(-ny // factor))]
        assert blocks.dtype == np.float32
        np.testing.assert_allclose(blocks, expected, rtol=1e-6)
    assert block_average(rng.random((9, 9)) > 0.5, 3).dtype == np.float32
