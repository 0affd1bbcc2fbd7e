"""sep_extract: SExtractor's catalog of sep's test image reproduced, every input path, and
every bad input with its message."""

import numpy as np
import pytest
import sep
from astropy.io import fits

import sep_extract
from astro_catalogs import read_catalog
from conftest import data_path

# SExtractor's configuration of image.cat (test-data/README.md): deblending off, saturation
# 50000, PHOT_AUTOPARAMS 2.5, 0.0.
# image.cat was made with MASK_TYPE NONE (neighbours summed as they are)
SEXTRACTOR_ARGS = ["--deblend-cont", "1.0", "--saturation", "50000", "--kron-min-radius", "0",
                   "--mask-type", "none"]


@pytest.fixture(scope="module")
def sextractor_run(tmp_path_factory):
    """Our catalog and images of sep's test image, with SExtractor's configuration."""
    out = tmp_path_factory.mktemp("sextractor_run")
    argv = ["--image", data_path("sep_image.fits"), "--catalog", out / "cat.tabular",
            "--background", out / "back.fits", "--rms", out / "rms.fits",
            "--segmentation", out / "seg.fits", "--overlay", out / "overlay.png",
            *SEXTRACTOR_ARGS]
    sep_extract.main([str(a) for a in argv])
    return out


def sorted_by_y(catalog):
    return catalog.take(np.argsort(catalog["Y_IMAGE"], kind="stable"))


@pytest.fixture(scope="module")
def matched(sextractor_run):
    ours = sorted_by_y(read_catalog(str(sextractor_run / "cat.tabular")))
    ref = sorted_by_y(read_catalog(data_path("sep_image.cat")))
    return ours, ref


def test_same_objects_as_sextractor(matched):
    ours, ref = matched
    assert ours.nrows == ref.nrows == 65
    np.testing.assert_allclose(ours["X_IMAGE"], ref["X_IMAGE"], atol=1e-3)
    np.testing.assert_allclose(ours["Y_IMAGE"], ref["Y_IMAGE"], atol=1e-3)
    # A_IMAGE is printed with 3 decimals in image.cat
    np.testing.assert_allclose(ours["A_IMAGE"], ref["A_IMAGE"], atol=1e-3)


def test_auto_photometry_as_sextractor(matched):
    ours, ref = matched
    # sep's own test excludes this object: SExtractor's Kron radius 0, sep's 0.08.
    keep = np.arange(ours.nrows) != 56
    np.testing.assert_allclose(ours["KRON_RADIUS"][keep], ref["KRON_RADIUS"][keep],
                               atol=0.01, rtol=0)
    np.testing.assert_allclose(ours["FLUX_AUTO"][keep], ref["FLUX_AUTO"][keep], rtol=5e-4)
    np.testing.assert_allclose(ours["FLUXERR_AUTO"][keep], ref["FLUXERR_AUTO"][keep],
                               rtol=5e-4)
    # image.cat's second FLUX_RADIUS is the half-light radius (PHOT_FLUXFRAC 0.1,0.5,0.6)
    np.testing.assert_allclose(ours["FLUX_RADIUS"][keep], ref["FLUX_RADIUS_2"][keep],
                               rtol=0.04, atol=0.01)


def test_flags_as_sextractor(matched):
    ours, ref = matched
    assert set(ours["FLAGS"]) <= {0, 4, 16, 20, 24}
    # the saturated stars and the objects cut by the image edge carry SExtractor's bits
    assert np.array_equal(ours["FLAGS"] & 4, ref["FLAGS"] & 4)
    assert np.count_nonzero(ours["FLAGS"] & 4) == 2
    assert np.array_equal(ours["FLAGS"] & 8, ref["FLAGS"] & 8)
    # bit 16 as SExtractor sets it: the boxes it scans for the Kron radius, for FLUX_AUTO
    # and for FLUX_RADIUS's growth curve (6 A + 1.5 around the object) leave the image
    np.testing.assert_array_equal(ours["FLAGS"], ref["FLAGS"])


def test_background_images_as_sextractor(sextractor_run):
    back = fits.getdata(sextractor_run / "back.fits")
    rms = fits.getdata(sextractor_run / "rms.fits")
    np.testing.assert_allclose(back, fits.getdata(data_path("sep_back.fits")), rtol=1e-5)
    np.testing.assert_allclose(rms, fits.getdata(data_path("sep_rms.fits")), rtol=1e-4)
    assert back.dtype == np.dtype(">f4") and back.shape == (256, 256)


def test_segmentation_labels_are_numbers(sextractor_run):
    seg = fits.getdata(sextractor_run / "seg.fits")
    catalog = read_catalog(str(sextractor_run / "cat.tabular"))
    assert seg.shape == (256, 256)
    assert set(np.unique(seg)) == set(range(0, 66))
    # a segment holds the pixels above the threshold in the filtered image; ISOAREA_IMAGE
    # counts those above it in the unfiltered image (SExtractor's analysis threshold)
    areas = np.bincount(seg.ravel(), minlength=66)[1:]
    assert np.all(areas >= catalog["ISOAREA_IMAGE"]) and np.all(catalog["ISOAREA_IMAGE"] > 0)
    # each object's peak pixel lies in its own segment
    peaks = seg[catalog["YPEAK_IMAGE"] - 1, catalog["XPEAK_IMAGE"] - 1]
    np.testing.assert_array_equal(peaks, catalog["NUMBER"])


def test_catalog_columns_and_conventions(sextractor_run):
    with open(sextractor_run / "cat.tabular") as handle:
        header = handle.readline().rstrip("\n")
    assert header == "#" + "\t".join(sep_extract.CATALOG_COLUMNS)
    catalog = read_catalog(str(sextractor_run / "cat.tabular"))
    np.testing.assert_array_equal(catalog["NUMBER"], np.arange(1, 66))
    assert np.all(np.isnan(catalog["ALPHA_J2000"]))  # this image has no celestial WCS
    assert np.all((catalog["THETA_IMAGE"] >= -90) & (catalog["THETA_IMAGE"] <= 90))
    np.testing.assert_allclose(catalog["ELLIPTICITY"],
                               1 - catalog["B_IMAGE"] / catalog["A_IMAGE"], atol=2e-4)
    positive = catalog["FLUX_AUTO"] > 0
    np.testing.assert_allclose(catalog["MAG_AUTO"][positive],
                               -2.5 * np.log10(catalog["FLUX_AUTO"][positive]), atol=1e-4)
    assert np.all(catalog["MAG_AUTO"][~positive] == 99.0)
    assert np.all(np.abs(catalog["BACKGROUND"] - 6852) < 50)


def test_overlay_png(sextractor_run):
    from PIL import Image
    with Image.open(sextractor_run / "overlay.png") as picture:
        assert picture.size == (800, 796)
        pixels = np.asarray(picture.convert("RGB"), dtype=int)
    # red ellipses are drawn on the grey image
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
    assert red.sum() > 2000


def run_extract(run_script, tmp_path, *argv):
    catalog = tmp_path / "cat.tabular"
    result = run_script(sep_extract, ["--catalog", catalog, *argv])
    result.catalog = read_catalog(str(catalog)) if result.status == 0 else None
    return result


def test_tiff_gives_the_same_catalog_as_fits(run_script, tmp_path):
    tiff = run_extract(run_script, tmp_path, "--image", data_path("sep_image.tiff"))
    fits_run = run_extract(run_script, tmp_path, "--image", data_path("sep_image.fits"))
    assert tiff.status == 0 and "from TIFF" in tiff.out
    assert tiff.catalog.nrows == fits_run.catalog.nrows == 69
    np.testing.assert_allclose(tiff.catalog["FLUX_AUTO"], fits_run.catalog["FLUX_AUTO"])


def test_cube_plane_by_band_and_by_index(run_script, tmp_path):
    by_band = run_extract(run_script, tmp_path, "--image", data_path("cube_grz.fits"),
                          "--band", "z", "--segmentation", tmp_path / "seg.fits")
    by_index = run_extract(run_script, tmp_path, "--image", data_path("cube_grz.fits"),
                           "--plane", "2")
    assert by_band.status == 0, by_band.err
    assert "plane 2" in by_band.out
    np.testing.assert_array_equal(by_band.catalog["FLUX_AUTO"], by_index.catalog["FLUX_AUTO"])
    # the cube's WCS (RA---TAN centred on 150, 2) gives sky positions
    assert np.all(np.abs(by_band.catalog["ALPHA_J2000"] - 150.0) < 0.01)
    assert np.all(np.abs(by_band.catalog["DELTA_J2000"] - 2.0) < 0.01)
    header = fits.getheader(tmp_path / "seg.fits")
    assert header["NAXIS"] == 2 and header["BAND"] == "z" and "NAXIS3" not in header
    assert header["CTYPE1"] == "RA---TAN"


def test_fluxes_scale_with_the_plane(run_script, tmp_path):
    """The cube's planes are 0.5x, 1x, 1.5x one image: FLUX_AUTO scales the same way."""
    g = run_extract(run_script, tmp_path, "--image", data_path("cube_grz.fits"), "--band",
                    "g", "--err-model", "none", "--thresh", "60")
    z = run_extract(run_script, tmp_path, "--image", data_path("cube_grz.fits"), "--band",
                    "z", "--err-model", "none", "--thresh", "180")
    assert g.catalog.nrows == z.catalog.nrows > 0
    np.testing.assert_allclose(z.catalog["FLUX_AUTO"], 3 * g.catalog["FLUX_AUTO"], rtol=1e-4)


def test_tile_compressed_survey_ccd_with_tpv_wcs(run_script, tmp_path):
    result = run_extract(run_script, tmp_path, "--image", data_path("mosaic3_z_ccd3.fits"),
                         "--deblend-cont", "1.0", "--zeropoint", "26.2876")
    assert result.status == 0, result.err
    assert "from FITS HDU 1" in result.out
    assert "saturation 47200 (header SATURATE)" in result.out
    catalog = result.catalog
    assert catalog.nrows == 9
    brightest = np.argmin(catalog["MAG_AUTO"])
    assert abs(catalog["MAG_AUTO"][brightest] - 17.16) < 0.05
    # centre pixel of this CCD is at RA, Dec = 177.35969, +59.42719 (test-data/README.md)
    assert np.all(np.abs(catalog["ALPHA_J2000"] - 177.3597) < 0.02)
    assert np.all(np.abs(catalog["DELTA_J2000"] - 59.4272) < 0.02)


def test_mask_removes_the_masked_star(run_script, tmp_path):
    plain = run_extract(run_script, tmp_path, "--image", data_path("sep_image.fits"))
    masked = run_extract(run_script, tmp_path, "--image", data_path("sep_image.fits"),
                         "--mask", data_path("mask_star.fits"))
    star = (np.abs(plain.catalog["X_IMAGE"] - 233.03) < 0.1) & \
        (np.abs(plain.catalog["Y_IMAGE"] - 183.03) < 0.1)
    assert star.sum() == 1
    assert not np.any((np.abs(masked.catalog["X_IMAGE"] - 233) < 9) &
                      (np.abs(masked.catalog["Y_IMAGE"] - 183) < 9))
    assert "mask: 361 pixel(s) above 0 are masked" in masked.out


def test_nan_pixels_are_masked(run_script, tmp_path):
    data = fits.getdata(data_path("sep_image.fits")).astype(np.float32)
    data[100:120, 10:40] = np.nan
    data[5, 5] = np.inf
    path = tmp_path / "nan.fits"
    fits.PrimaryHDU(data).writeto(path)
    result = run_extract(run_script, tmp_path, "--image", path)
    assert result.status == 0, result.err
    assert "masked 601 NaN/infinite pixel(s)" in result.out
    numeric = [result.catalog[c] for c in ("X_IMAGE", "FLUX_AUTO", "BACKGROUND")]
    assert all(np.all(np.isfinite(c)) for c in numeric)


def test_big_endian_and_integer_data(run_script, tmp_path):
    data = fits.getdata(data_path("sep_image.fits"))
    as_int = np.round(data).astype(">i4")
    path = tmp_path / "int.fits"
    fits.PrimaryHDU(as_int).writeto(path)
    native = tmp_path / "native.tiff"
    import tifffile
    tifffile.imwrite(native, np.round(data).astype("<i4"))
    big = run_extract(run_script, tmp_path, "--image", path)
    little = run_extract(run_script, tmp_path, "--image", native)
    assert big.status == little.status == 0
    assert "float64" in big.out
    np.testing.assert_allclose(big.catalog["FLUX_AUTO"], little.catalog["FLUX_AUTO"])


@pytest.mark.parametrize("filter_args, filter_type", [
    (["--filter", "none"], "conv"),
    (["--filter", data_path("kernel_gauss5.txt")], "conv"),
    (["--filter", data_path("sextractor_default.conv")], "matched"),
])
def test_filters(run_script, tmp_path, filter_args, filter_type):
    result = run_extract(run_script, tmp_path, "--image", data_path("sep_image.fits"),
                         "--filter-type", filter_type, *filter_args)
    assert result.status == 0, result.err
    assert result.catalog.nrows > 40


def test_conv_file_equals_default_kernel():
    kernel = sep_extract.load_kernel(data_path("sextractor_default.conv"))
    np.testing.assert_array_equal(kernel, sep_extract.DEFAULT_KERNEL)


def test_error_models(run_script, tmp_path):
    image = ["--image", data_path("sep_image.fits"), "--deblend-cont", "1"]
    global_run = run_extract(run_script, tmp_path, *image)
    map_run = run_extract(run_script, tmp_path, *image, "--err-model", "map")
    # an absolute threshold of 1.5 x the global RMS is the global model again
    absolute = run_extract(run_script, tmp_path, *image, "--err-model", "none",
                           "--thresh", str(1.5 * 65.4617))
    assert global_run.catalog.nrows == 65
    assert abs(map_run.catalog.nrows - 65) <= 5
    assert absolute.catalog.nrows == 65
    np.testing.assert_allclose(absolute.catalog["X_IMAGE"], global_run.catalog["X_IMAGE"])


def test_header_zero_point_and_gain(run_script, tmp_path):
    data = fits.getdata(data_path("sep_image.fits"))
    header = fits.Header({"MAGZP": 22.5})
    path = tmp_path / "zp.fits"
    fits.PrimaryHDU(data, header).writeto(path)
    plain = run_extract(run_script, tmp_path, "--image", path)
    with_gain = run_extract(run_script, tmp_path, "--image", path, "--gain", "2.0")
    assert "zero point 22.5 (header MAGZP)" in plain.out
    np.testing.assert_allclose(plain.catalog["MAG_AUTO"],
                               22.5 - 2.5 * np.log10(plain.catalog["FLUX_AUTO"]), atol=1e-4)
    assert np.all(with_gain.catalog["FLUXERR_AUTO"] >= plain.catalog["FLUXERR_AUTO"])


def test_no_sources_gives_an_empty_catalog_and_valid_images(run_script, tmp_path):
    result = run_extract(run_script, tmp_path, "--image", data_path("blank_sky.fits"),
                         "--thresh", "5", "--segmentation", tmp_path / "seg.fits",
                         "--overlay", tmp_path / "o.png", "--background", tmp_path / "b.fits")
    assert result.status == 0, result.err
    assert "detected 0 objects" in result.out
    assert result.catalog.nrows == 0 and "FLUX_AUTO" in result.catalog
    assert not fits.getdata(tmp_path / "seg.fits").any()
    assert fits.getdata(tmp_path / "b.fits").shape == (64, 64)
    assert (tmp_path / "o.png").stat().st_size > 1000


def test_small_pixel_stack_is_raised(run_script, tmp_path):
    old = sep.get_extract_pixstack()
    sep.set_extract_pixstack(200)
    try:
        result = run_extract(run_script, tmp_path, "--image", data_path("sep_image.fits"))
    finally:
        sep.set_extract_pixstack(old)
    assert result.status == 0, result.err
    assert "raised sep's pixel stack to" in result.out
    assert result.catalog.nrows == 69


@pytest.mark.parametrize("argv, message", [
    (["--image", data_path("cube_grz.fits")],
     "Error: the image is a 3-D cube with 3 planes (0=g, 1=r, 2=z); choose one plane"),
    (["--image", data_path("cube_grz.fits"), "--band", "i"],
     "Error: band 'i' is not in the image (bands: g, r, z)"),
    (["--image", data_path("cube_grz.fits"), "--plane", "5"],
     "Error: the image has planes 0..2; plane 5 does not exist"),
    (["--image", data_path("rgb.tiff")], "Error: the image is an RGB TIFF; use a single"),
    (["--image", data_path("sep_image.fits"), "--mask", data_path("mask_wrong_shape.fits")],
     "Error: the mask is 120 x 100 pixels but the image is 256 x 256"),
    (["--image", data_path("sep_image.fits"), "--filter", data_path("kernel_ragged.txt")],
     "Error: the filter kernel rows have different lengths"),
    (["--image", data_path("sep_image.fits"), "--filter", data_path("error_page.fits")],
     "Error: filter kernel line 1 is not a row of numbers"),
    (["--image", data_path("all_nan.fits")],
     "Error: every pixel of the image is NaN or infinite"),
    (["--image", data_path("error_page.fits")],
     "Error: the image is an HTML page, not a FITS or TIFF image"),
    (["--image", data_path("sep_image.cat")], "Error: the image is neither a FITS nor a TIFF"),
    (["--image", "/no/such/image.fits"], "Error: the image: file '/no/such/image.fits' not found"),
    (["--image", data_path("sep_image.fits"), "--hdu", "2"],
     "Error: the image has 1 HDU(s) (0..0); HDU 2 does not exist"),
    (["--image", data_path("sep_image.fits"), "--minarea", "0"],
     "Error: --minarea must be positive (got 0)"),
    (["--image", data_path("sep_image.fits"), "--deblend-cont", "2"],
     "Error: --deblend-cont must be between 0 and 1"),
])
def test_bad_input_messages(run_script, tmp_path, argv, message):
    result = run_extract(run_script, tmp_path, *argv)
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err


def test_kernel_with_nan_and_empty_kernel(tmp_path):
    nan_kernel = tmp_path / "nan.txt"
    nan_kernel.write_text("1 2\nnan 1\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(sep_extract.ToolError, match="NaN or infinite"):
        sep_extract.load_kernel(str(nan_kernel))
    with pytest.raises(sep_extract.ToolError, match="holds no numbers"):
        sep_extract.load_kernel(str(empty))
    zeros = tmp_path / "zeros.txt"
    zeros.write_text("0 0\n0 0\n")
    with pytest.raises(sep_extract.ToolError, match="all zeros"):
        sep_extract.load_kernel(str(zeros))


@pytest.mark.parametrize("kind", ["correct", "blank"])
def test_neighbours_in_flux_auto_as_sextractor_s_mask_type(run_script, tmp_path, kind):
    """SExtractor 2.25 with MASK_TYPE CORRECT (its default) and BLANK, deblending off
    (tests/make_sextractor_references.py): inside each object's Kron ellipse the pixels of
    the other detections, those smaller than DETECT_MINAREA included, are replaced by their
    mirror image or by 0; the Kron radius is measured without them. Every object's
    KRON_RADIUS, FLUX_AUTO and FLUXERR_AUTO are SExtractor's."""
    runs = {}
    for name in (kind, "none"):
        out = tmp_path / f"{name}.tab"
        result = run_script(sep_extract, ["--image", data_path("sep_image.fits"), "--catalog",
                                          out, "--filter-type", "conv", "--deblend-cont", "1",
                                          "--mask-type", name])
        assert result.status == 0, result.err
        runs[name] = sorted_by_y(read_catalog(str(out)))
    ours = runs[kind]
    theirs = sorted_by_y(read_catalog(data_path(f"sextractor_mask_{kind}.cat")))
    assert ours.nrows == theirs.nrows == 65
    np.testing.assert_allclose(ours["X_IMAGE"], theirs["X_IMAGE"], atol=1e-3)
    np.testing.assert_allclose(ours["KRON_RADIUS"], theirs["KRON_RADIUS"], atol=0.006)
    np.testing.assert_allclose(ours["FLUX_AUTO"], theirs["FLUX_AUTO"], rtol=1e-6)
    np.testing.assert_allclose(ours["FLUXERR_AUTO"], theirs["FLUXERR_AUTO"], rtol=1e-6)
    # only the objects with neighbours inside their ellipse change
    changed = np.abs(ours["FLUX_AUTO"] / runs["none"]["FLUX_AUTO"] - 1) > 1e-3
    assert 5 <= changed.sum() <= 30, changed.sum()


def matched_to(ours, theirs, radius=0.5):
    """Index in theirs of each of our objects, and which are within radius pixels."""
    from scipy.spatial import cKDTree
    distance, index = cKDTree(np.column_stack([theirs["X_IMAGE"], theirs["Y_IMAGE"]])).query(
        np.column_stack([ours["X_IMAGE"], ours["Y_IMAGE"]]))
    return index, distance < radius


def test_crowded_objects_and_mag_best_as_sextractor(run_script, tmp_path):
    """SExtractor 2.25, deblending on, MASK_TYPE CORRECT (sextractor_crowded.cat): FLAGS bit
    1 marks the objects whose Kron ellipse, or the 6-sigma ellipse their Kron radius is
    measured in, is more than 10 % blanked by neighbours, and MAG_BEST is then MAG_ISOCOR.
    Every object SExtractor calls crowded is; two more are (their neighbours keep the
    pixels of detections CLEAN removed, which SExtractor gives back: see the README)."""
    out = tmp_path / "crowded.tab"
    result = run_script(sep_extract, ["--image", data_path("sep_image.fits"), "--catalog",
                                      out, "--filter-type", "conv", "--saturation", "50000"])
    assert result.status == 0, result.err
    ours, theirs = read_catalog(str(out)), read_catalog(data_path("sextractor_crowded.cat"))
    index, matched = matched_to(ours, theirs)
    assert matched.sum() == theirs.nrows == 68
    our_flags = ours["FLAGS"].astype(int)[matched]
    their_flags = theirs["FLAGS"].astype(int)[index[matched]]
    crowded, their_crowded = (our_flags & 1) > 0, (their_flags & 1) > 0
    assert their_crowded.sum() == 3
    assert (crowded | ~their_crowded).all()          # none of SExtractor's missed
    assert crowded.sum() <= their_crowded.sum() + 2
    assert (our_flags == their_flags).sum() >= 66
    best, auto = ours["MAG_BEST"][matched], ours["MAG_AUTO"][matched]
    np.testing.assert_array_equal(best[~crowded], auto[~crowded])
    # where both call it crowded, MAG_ISOCOR: 0.1 mag from SExtractor's at most (FLUX_ISO
    # differs there: CLEAN), where MAG_AUTO was up to 0.47 mag away
    both = crowded & their_crowded
    their_best = theirs["MAG_BEST"][index[matched]]
    assert (np.abs(best[both] - their_best[both]) < 0.11).all()
    assert (np.abs(auto[both] - their_best[both]) > 0.1).any()
    # CLEAN's merge: FLUX_ISO is SExtractor's but for 7 deblended objects (12 without it)
    iso = np.abs(ours["FLUX_ISO"][matched] / theirs["FLUX_ISO"][index[matched]] - 1)
    assert (iso > 1e-5).sum() <= 7


def test_clean_merges_the_detections_it_removes_as_sextractor(run_script, tmp_path):
    """SExtractor 2.25, deblending off (sextractor_clean.cat and its segmentation map):
    CLEAN removes 6 detections in the wings of brighter objects and SExtractor gives each
    one's isophotal flux and pixels to the object that swallowed it, where sep drops them.
    Every FLUX_ISO is SExtractor's (4 only through the merge), and the segmentation map
    labels the same pixels with the same objects."""
    out, seg = tmp_path / "clean.tab", tmp_path / "seg.fits"
    result = run_script(sep_extract, ["--image", data_path("sep_image.fits"), "--catalog",
                                      out, "--filter-type", "conv", "--deblend-cont", "1",
                                      "--saturation", "50000", "--segmentation", seg])
    assert result.status == 0, result.err
    ours, theirs = read_catalog(str(out)), read_catalog(data_path("sextractor_clean.cat"))
    index, matched = matched_to(ours, theirs)
    assert matched.all() and ours.nrows == theirs.nrows == 65
    np.testing.assert_allclose(ours["FLUX_ISO"], theirs["FLUX_ISO"][index], rtol=1e-5)
    data = fits.getdata(data_path("sep_image.fits")).astype(np.float32)
    background = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    bare = sep.extract(data - background.back(), 1.5, err=background.globalrms,
                       filter_kernel=np.array([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]),
                       filter_type="conv", minarea=5, deblend_cont=1.0)
    assert (np.abs(np.sort(bare["flux"]) / np.sort(ours["FLUX_ISO"]) - 1) > 1e-3).sum() >= 4
    our_seg, their_seg = fits.getdata(seg), fits.getdata(data_path("sextractor_clean_seg.fits"))
    np.testing.assert_array_equal(our_seg > 0, their_seg > 0)
    labelled = our_seg > 0   # the same object on every pixel (numbered alike, matched)
    np.testing.assert_array_equal(theirs["NUMBER"][index][our_seg[labelled] - 1],
                                  their_seg[labelled])


def test_the_sparse_pixel_groups_are_scipy_s_labels():
    """pixel_groups (the groups of threshold pixels outside the objects, found among those
    pixels only) against scipy.ndimage.label with 8-connectivity: the same groups with the
    same numbers, on random masks of every density, with groups touching the left and
    right edges of consecutive rows (which must not join) and an empty mask."""
    from scipy import ndimage
    from astro_clean import pixel_groups
    rng = np.random.default_rng(11)
    for trial in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 60, 2))
        pixels = rng.random(shape) < rng.choice([0.0, 0.05, 0.3, 0.6, 0.9])
        if trial % 4 == 0 and shape[1] > 1:   # the last column of one row, the first of
            pixels[:, -1] = pixels[:, 0] = False   # the next: neighbours in flat order
            pixels[::2, -1] = pixels[1::2, 0] = True
        expected, count = ndimage.label(pixels, structure=np.ones((3, 3), dtype=bool))
        groups = pixel_groups(np.flatnonzero(pixels), shape)
        labels = np.zeros(shape, dtype=np.int64)
        labels.ravel()[groups.index] = groups.labels
        np.testing.assert_array_equal(labels, expected)
        np.testing.assert_array_equal(groups.sizes, np.bincount(expected.ravel(),
                                                                minlength=count + 1)
                                      * (np.arange(count + 1) > 0))


def test_the_corrected_isophotal_flux_is_sextractor_s():
    """FLUX_ISOCOR from sep's isophotal flux, detection pixels and threshold: SExtractor's
    to 1e-5 wherever the isophotal fluxes agree (52 objects of 68)."""
    from astro_photometry import isophotal_corrected_fluxes
    data = fits.getdata(data_path("sep_image.fits")).astype(np.float32)
    background = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    kernel = np.array([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]])
    objects = sep.extract(data - background.back(), 1.5, err=background.globalrms,
                          filter_kernel=kernel, filter_type="conv", minarea=5)
    theirs = read_catalog(data_path("sextractor_crowded.cat"))
    index, matched = matched_to({"X_IMAGE": objects["x"] + 1, "Y_IMAGE": objects["y"] + 1},
                                theirs)
    same_iso = matched & (np.abs(objects["flux"] / theirs["FLUX_ISO"][index] - 1) < 1e-5)
    assert same_iso.sum() >= 50
    ours = isophotal_corrected_fluxes(objects["flux"], objects["npix"], objects["thresh"])
    np.testing.assert_allclose(ours[same_iso], theirs["FLUX_ISOCOR"][index][same_iso],
                               rtol=1e-5)
    assert isophotal_corrected_fluxes([-5.0], [10], [1.0])[0] == -5.0  # no correction


def test_a_mirror_pixel_replaces_a_neighbour_s():
    """masked_pixel_corrections on a 9x9 image: the neighbour's two pixels inside the
    ellipse are taken out, their mirror images put in; with BLANK only taken out; a bad
    pixel whose mirror is bad too counts as 0 in both."""
    from astro_photometry import masked_pixel_corrections
    data = np.arange(81, dtype=np.float64).reshape(9, 9)
    segmap = np.zeros((9, 9), dtype=np.int32)
    segmap[4, 4] = 1
    segmap[4, 6:8] = 2          # a neighbour right of the object
    bad = np.zeros((9, 9), dtype=bool)
    bad[2, 4] = bad[6, 4] = True  # a bad pixel and its (bad) mirror
    one = np.array([4.0])
    ellipse = (one, one, np.array([1.0]), np.array([1.0]), np.array([0.0]), np.array([3.5]))
    noise = np.full((9, 9), np.sqrt(2.0))  # variance 2
    correct = masked_pixel_corrections(data, noise, None, segmap, bad, ellipse, "correct")
    taken = data[4, 6] + data[4, 7] + data[2, 4] + data[6, 4]
    assert correct[0, 0] == pytest.approx(data[4, 2] + data[4, 1] - taken)
    assert correct[1, 0] == pytest.approx(2 * 2.0 - 4 * 2.0)
    blank = masked_pixel_corrections(data, noise, None, segmap, bad, ellipse, "blank")
    assert blank[0, 0] == pytest.approx(-taken)
    none = masked_pixel_corrections(data, noise, None, segmap, bad, ellipse, "none")
    assert none[0, 0] == pytest.approx(-(data[2, 4] + data[6, 4]))


@pytest.mark.parametrize("filter_type", ["conv", "matched"])
@pytest.mark.parametrize("noise", ["global", "map", "map and mask"])
def test_small_detections_are_sep_s_own_threshold(filter_type, noise):
    """The detections smaller than the minimum area, found without a second sep.extract:
    the same pixels as sep.extract with minarea 1, no deblending and no cleaning gives."""
    import dataclasses
    import sep
    data = fits.getdata(data_path("sep_image.fits")).astype(np.float32)
    background = sep.Background(data)
    data = data - background.back()
    err = background.globalrms if noise == "global" else background.rms().astype(np.float32)
    mask = None
    if noise == "map and mask":
        mask = np.zeros(data.shape, dtype=bool)
        mask[100:120, 50:90] = True
    detection = sep_extract.Detection(filter_type=filter_type)
    kernel = sep_extract.DEFAULT_KERNEL
    _, segmap = sep_extract.detect(data, mask, err, kernel, detection)
    every = dataclasses.replace(detection, minarea=1, deblend_cont=1.0, clean=False)
    _, above = sep_extract.detect(data, mask, err, kernel, every)
    expected = (np.bincount(above.ravel()) < detection.minarea)[above] & (above > 0) \
        & (segmap == 0)
    above, _ = sep_extract.threshold_pixels(data, mask, err, kernel, detection)
    groups = sep_extract.outside_groups(above, segmap)
    found = sep_extract.undersized(groups, detection.minarea)
    # band by band, with the kernel's reach around each band: the same pixels
    banded, _ = sep_extract.outside_threshold_pixels(data, mask, err, kernel, detection,
                                                     segmap, band=7)
    np.testing.assert_array_equal(banded.index, groups.index)
    np.testing.assert_array_equal(sep_extract.undersized(banded, detection.minarea), found)
    assert expected.sum() > 100
    np.testing.assert_array_equal(found, expected)


def test_galaxy_json_names_the_catalog_columns(run_script, tmp_path):
    """The columns depend on the options (a flag image adds IMAFLAGS_ISO and NIMAFLAGS_ISO,
    a weight map FLAGS_WEIGHT): the run tells Galaxy their names in galaxy.json."""
    import json
    out, meta = tmp_path / "cat.tab", tmp_path / "galaxy.json"
    result = run_script(sep_extract, ["--image", data_path("mosaic3_z_ccd3.fits"), "--catalog",
                                      out, "--weight", data_path("mosaic3_z_ccd3_oow.fits"),
                                      "--flag-image", data_path("mosaic3_z_ccd3_ood.fits"),
                                      "--galaxy-json", meta])
    assert result.status == 0, result.err
    names = json.loads(meta.read_text())["catalog"]["metadata"]["column_names"]
    assert names == list(read_catalog(str(out)))
    assert names[0] == "NUMBER" and names[-4:] == ["IMAFLAGS_ISO", "NIMAFLAGS_ISO", "FLAGS",
                                                   "FLAGS_WEIGHT"]
