"""Weight maps and flag images in sep_extract: against SExtractor 2.25 on a Legacy Surveys
CCD with its inverse variance and DQ maps, each weight type, bad pixels, the weight as
another HDU of the image's file, each flag combination, and every bad input."""

import numpy as np
import pytest
from astropy.io import fits
from scipy.spatial import cKDTree

import sep_extract
from astro_catalogs import read_catalog
from astro_stellarity import footprint_pixels
from astro_weights import combine_flags, histogram_mode, mesh_maps, weight_scale
from conftest import data_path

MOSAIC = data_path("mosaic3_z_ccd3.fits")
WEIGHT = data_path("mosaic3_z_ccd3_oow.fits")
FLAGS = data_path("mosaic3_z_ccd3_ood.fits")


def extract(run_script, tmp_path, image, *extra, name="cat.tab"):
    out = tmp_path / name
    result = run_script(sep_extract, ["--image", image, "--catalog", out, "--deblend-cont",
                                      "1", *extra])
    result.catalog = read_catalog(str(out)) if result.status == 0 else None
    result.path = out
    return result


def test_against_sextractor_with_map_weight_and_a_flag_image(run_script, tmp_path):
    """SExtractor 2.25, WEIGHT_TYPE MAP_WEIGHT with the CCD's inverse variance, FLAG_IMAGE
    its DQ map, the header's GAIN (tests/make_sextractor_references.py)."""
    result = extract(run_script, tmp_path, MOSAIC, "--weight", WEIGHT, "--flag-image", FLAGS,
                     "--seeing-fwhm", "1.3", "--pixel-scale", "0.262", "--saturation", "47200",
                     "--mask-type", "none")  # as test-data/sextractor_dual.sex
    assert result.status == 0, result.err
    ours, theirs = result.catalog, read_catalog(data_path("sextractor_weights_mosaic3.cat"))
    assert ours.nrows == theirs.nrows == 8  # the unweighted run finds 9
    distance, index = cKDTree(np.column_stack([ours["X_IMAGE"], ours["Y_IMAGE"]])).query(
        np.column_stack([theirs["X_IMAGE"], theirs["Y_IMAGE"]]))
    # the weight scaled as SExtractor's back.c does: the same per-pixel thresholds, so the
    # same footprints, centres, Kron apertures and errors (before its estimator was
    # followed: 0.047 px, FLUX_AUTO 2.1 %, FLUXERR_AUTO 1.4 %)
    assert np.all(distance < 1e-3)
    flux = ours["FLUX_AUTO"][index] / theirs["FLUX_AUTO"] - 1
    assert np.all(np.abs(flux) < 1e-5)
    error = ours["FLUXERR_AUTO"][index] / theirs["FLUXERR_AUTO"] - 1
    assert np.all(np.abs(error) < 1e-4)
    assert np.abs(ours["ISOAREA_IMAGE"][index] - theirs["ISOAREA_IMAGE"]).max() <= 1
    assert "variance rescaled by 0.93136" in result.out
    np.testing.assert_array_equal(ours["IMAFLAGS_ISO"], 0)  # this cutout's DQ is all 0
    assert list(ours)[-4:] == ["IMAFLAGS_ISO", "NIMAFLAGS_ISO", "FLAGS", "FLAGS_WEIGHT"]
    np.testing.assert_array_equal(ours["FLAGS_WEIGHT"], 0)  # no bad weight in this cutout
    assert "gain 1.91 from the header's GAIN" in result.out


def test_a_variance_equal_to_the_sky_gives_the_plain_catalog(run_script, tmp_path):
    plain = extract(run_script, tmp_path, data_path("sep_image.fits"), "--filter-type", "conv",
                    name="plain.tab").catalog
    variance = tmp_path / "var.fits"
    fits.PrimaryHDU(np.full((256, 256), 65.4617 ** 2, dtype=np.float32)).writeto(variance)
    for kind, values in (("map_var", 65.4617 ** 2), ("map_rms", 65.4617),
                         ("map_weight", 1 / 7.0)):
        path = tmp_path / f"{kind}.fits"
        fits.PrimaryHDU(np.full((256, 256), values, dtype=np.float32)).writeto(path)
        weighted = extract(run_script, tmp_path, data_path("sep_image.fits"), "--weight", path,
                           "--weight-type", kind, name=f"{kind}.tab")
        assert weighted.status == 0, weighted.err
        assert weighted.catalog.nrows == plain.nrows, kind
        # the filtered variance is lower within the kernel's reach of the edges (SExtractor
        # filters it with zeros beyond them): the object at x = 1.5 grows there
        x, y = plain["X_IMAGE"], plain["Y_IMAGE"]
        inner = (x > 2.5) & (x < 254.5) & (y > 2.5) & (y < 254.5)
        assert (~inner).sum() == 3
        np.testing.assert_allclose(weighted.catalog["FLUX_AUTO"][inner],
                                   plain["FLUX_AUTO"][inner], rtol=1e-5, err_msg=kind)
        np.testing.assert_allclose(weighted.catalog["FLUXERR_AUTO"][inner],
                                   plain["FLUXERR_AUTO"][inner], rtol=2e-3, err_msg=kind)
        assert np.all(weighted.catalog["ISOAREA_IMAGE"][~inner] >= plain["ISOAREA_IMAGE"][~inner])
        assert np.any(weighted.catalog["ISOAREA_IMAGE"][~inner] > plain["ISOAREA_IMAGE"][~inner])


def test_zero_weight_pixels_are_left_out(run_script, tmp_path):
    """INTERP_TYPE NONE: bad-weight pixels are neither detected nor measured."""
    weight = np.ones((256, 256), dtype=np.float32)
    weight[170:200, 220:250] = 0  # the saturated star at (233, 183), 1-based
    path = tmp_path / "w.fits"
    fits.PrimaryHDU(weight).writeto(path)
    result = extract(run_script, tmp_path, data_path("sep_image.fits"), "--weight", path,
                     "--interp-type", "none")
    assert result.status == 0, result.err
    assert "900 bad pixel(s)" in result.out
    x, y = result.catalog["X_IMAGE"], result.catalog["Y_IMAGE"]
    inside = (x > 220) & (x < 251) & (y > 170) & (y < 201)
    assert not inside.any()


def test_the_weight_as_another_hdu_of_the_image_file(run_script, tmp_path):
    """A DES-like coadd: SCI in HDU 0, WGT in HDU 1, CHECKSUM and DATASUM twice."""
    science = fits.getdata(MOSAIC, 1)
    weight = fits.getdata(WEIGHT, 1)
    header = fits.Header([("CHECKSUM", "A"), ("DATASUM", "1"), ("CHECKSUM", "B"),
                          ("DATASUM", "2")])
    path = tmp_path / "coadd.fits"
    fits.HDUList([fits.PrimaryHDU(science, header),
                  fits.ImageHDU(weight, name="WGT")]).writeto(path)
    separate = extract(run_script, tmp_path, MOSAIC, "--weight", WEIGHT, name="a.tab")
    same_file = extract(run_script, tmp_path, path, "--hdu", "0", "--weight", path,
                        "--weight-hdu", "1", name="b.tab")
    assert same_file.status == 0, same_file.err
    np.testing.assert_allclose(same_file.catalog["FLUX_AUTO"], separate.catalog["FLUX_AUTO"],
                               rtol=1e-4)


def test_flag_combinations():
    segmap = np.zeros((4, 6), dtype=np.int32)
    segmap[1:3, 0:3] = 1  # object 1: 6 pixels
    segmap[1:3, 4:6] = 2  # object 2: 4 pixels, no flags
    flags = np.zeros((4, 6), dtype=np.int64)
    flags[1, 0], flags[1, 1], flags[2, 0], flags[2, 2] = 4, 6, 4, 1
    labels, index = footprint_pixels(segmap)
    expected = {"or": ([7, 0], [4, 0]), "and": ([0, 0], [4, 0]), "min": ([1, 0], [1, 0]),
                "max": ([6, 0], [1, 0]), "most": ([4, 0], [2, 0])}
    for kind, (combined, counted) in expected.items():
        result = combine_flags(flags, labels, index, 2, kind)
        assert [list(r) for r in result] == [combined, counted], kind


def test_imaflags_over_the_footprint(run_script, tmp_path):
    flags = np.zeros((256, 256), dtype=np.int16)
    flags[180:186, 230:236] = 2  # SATUR_R-like bits over the star's core
    flags[0:10, 0:10] = 8
    path = tmp_path / "flags.fits"
    fits.PrimaryHDU(flags).writeto(path)
    result = extract(run_script, tmp_path, data_path("sep_image.fits"), "--flag-image", path,
                     "--flag-type", "or")
    catalog = result.catalog
    star = np.argmin(np.hypot(catalog["X_IMAGE"] - 233, catalog["Y_IMAGE"] - 183))
    assert catalog["IMAFLAGS_ISO"][star] == 2 and catalog["NIMAFLAGS_ISO"][star] == 36
    assert (catalog["IMAFLAGS_ISO"] > 0).sum() <= 2


@pytest.mark.parametrize("case, message", [
    ("shape", "Error: the weight map is 120 x 100 pixels but the image is 256 x 256"),
    ("zeros", "Error: the weight map has no usable pixel: every value is bad for MAP_WEIGHT"),
    ("negative", "Error: the weight map has no usable pixel"),
    ("float flags", "Error: the flag image must hold whole, non-negative numbers"),
    ("flag shape", "Error: the flag image is 120 x 100 pixels but the image is 256 x 256"),
])
def test_bad_weights_and_flags(run_script, tmp_path, case, message):
    zeros, negative, floats = (tmp_path / f"{n}.fits" for n in ("z", "n", "f"))
    fits.PrimaryHDU(np.zeros((256, 256), dtype=np.float32)).writeto(zeros)
    fits.PrimaryHDU(np.full((256, 256), -1.0, dtype=np.float32)).writeto(negative)
    fits.PrimaryHDU(np.full((256, 256), 0.5, dtype=np.float32)).writeto(floats)
    argv = {"shape": ["--weight", data_path("mask_wrong_shape.fits")],
            "zeros": ["--weight", zeros], "negative": ["--weight", negative],
            "float flags": ["--flag-image", floats],
            "flag shape": ["--flag-image", data_path("mask_wrong_shape.fits")]}[case]
    result = extract(run_script, tmp_path, data_path("sep_image.fits"), *argv)
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err
    assert not result.path.exists()


def test_weight_gain_scales_each_pixel_s_poisson_term_by_its_variance():
    from astro_photometry import sums_with_errors, weight_gain_map
    data = np.array([[10.0, -5.0], [20.0, 0.0]], dtype=np.float32)
    variance = np.array([[4.0, 4.0], [8.0, 4.0]], dtype=np.float32)
    poisson = weight_gain_map(data, variance, 2.0, 5.0)   # global variance 4, gain 5
    np.testing.assert_allclose(poisson, [[2.0, 0.0], [8.0, 0.0]])  # negative flux: none
    assert weight_gain_map(data, None, 2.0, 5.0) is None  # no weight map: total flux / gain
    assert weight_gain_map(data, variance, 2.0, None) is None

    def fake_sum(values, x, err=None, gain=None, **options):  # a sum over all pixels
        assert gain is None  # the Poisson term comes from the map, not from sep's gain
        return (np.array([values.sum()]), np.array([3.0 if err is not None else 0.0]),
                np.array([0]))
    flux, error, _ = sums_with_errors(fake_sum, data, ([0.0],), 1.0, 5.0, poisson)
    np.testing.assert_allclose(flux, [25.0])
    np.testing.assert_allclose(error, [np.sqrt(9.0 + 10.0)])  # 3^2 + 2 + 8


def sextractor_backguess(counts, quantisation):
    """SExtractor's backguess() (src/back.c) step by step, its median walk included."""
    mean0, levels, step, zero = quantisation
    top = levels - 1
    lcut, hcut, sigma, previous, mean, median = 0, top, 10.0 * top, 1.0, mean0, mean0
    for _ in range(100):
        if not (sigma >= 0.1 and abs(sigma / previous - 1.0) > 1e-4):
            break
        previous = sigma
        total = low_sum = high_sum = first = second = 0
        low, high = lcut, hcut
        for i in range(lcut, hcut + 1):
            if low_sum < high_sum:
                low_sum += counts[low]
                low += 1
            else:
                high_sum += counts[high]
                high -= 1
            total += counts[i]
            first += counts[i] * i
            second += counts[i] * i * i
        peak = max(counts[low] if low < levels else 0, counts[high])
        median = (high + 0.5 + (high_sum - low_sum) / (2.0 * peak) if peak else high + 0.5) \
            if high >= 0 else 0.0
        mean = first / total if total else 0.0
        sigma = second / total - mean * mean if total else 0.0
        sigma = np.sqrt(sigma) if sigma > 0 else 0.0
        edge = median - 3 * sigma
        lcut = int(edge + 0.5) if edge > 0 else 0
        edge = median + 3 * sigma
        hcut = (int(edge + 0.5) if edge > 0 else int(edge - 0.5)) if edge < top else top
    if sigma <= 0:
        return zero + mean * step, 0.0
    mode = 2.5 * median - 1.5 * mean if abs((mean - median) / sigma) < 0.3 else median
    return zero + mode * step, sigma * step


def test_the_mesh_mode_is_sextractor_s_backguess():
    """histogram_mode against a step-by-step transcription of SExtractor's backguess(), on
    noisy histograms of sky-like and skewed meshes, with empty bins."""
    rng = np.random.default_rng(3)
    for trial in range(300):
        levels = int(rng.integers(5, 300))
        centre = rng.uniform(0.3, 0.7) * levels
        values = rng.normal(centre, levels / 10, int(rng.integers(10, 3000)))
        if trial % 3 == 0:  # a source's tail
            values = np.concatenate([values, centre + rng.exponential(levels / 4, 200)])
        counts = np.bincount(np.clip(values, 0, levels - 1).astype(int), minlength=levels)
        counts[rng.random(levels) < 0.1] = 0
        quantisation = (centre, levels, 0.5, -3.0)
        assert histogram_mode(counts, quantisation) == pytest.approx(
            sextractor_backguess(counts, quantisation), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("holes", ["none", "bad", "NaN"])
def test_the_mesh_estimator_is_sep_s_on_the_image(holes):
    """The image side of the weight scaling: its meshes' medians are sep's global
    background and RMS (sep's background is SExtractor's), with and without bad pixels
    (NaN pixels among them: left out, never summed)."""
    import sep
    data = fits.getdata(data_path("sep_image.fits")).astype(np.float32)
    usable = np.ones(data.shape, dtype=bool)
    if holes != "none":
        usable[40:90, 30:200] = False
    if holes == "NaN":
        data[40:90, 30:200] = np.nan
    (back, sigma), _ = mesh_maps(data, np.ones_like(data), usable, 64, 3)
    reference = sep.Background(data, mask=~usable, bw=64, bh=64, fw=3, fh=3)
    assert np.median(back) == pytest.approx(reference.globalback, rel=1e-6)
    assert np.median(sigma) == pytest.approx(reference.globalrms, rel=1e-6)


def test_the_mesh_estimator_does_not_depend_on_its_band_of_meshes():
    """Meshes estimated one row of meshes at a time or all at once, their modes a band or
    several bands at a time: the same values, with partial meshes at the right and bottom
    edges, bad pixels and NaN in them."""
    rng = np.random.default_rng(6)
    data = rng.normal(100.0, 2.0, (300, 270)).astype(np.float32)
    data[40:70, 10:200] = np.nan
    variance = rng.uniform(3.0, 5.0, data.shape).astype(np.float32)
    usable = np.isfinite(data) & (rng.random(data.shape) > 0.05)
    one_row = mesh_maps(data, variance, usable, 64, 3, band_pixels=1, group=1)
    for band_pixels, group in ((data.size, 1), (1, 3), (1, 10)):
        other = mesh_maps(data, variance, usable, 64, 3, band_pixels=band_pixels, group=group)
        for ours, theirs in zip(one_row[0] + one_row[1], other[0] + other[1]):
            assert ours.shape == (5, 5)
            np.testing.assert_array_equal(ours, theirs)


def test_a_variance_map_proportional_to_the_noise_scales_to_it():
    rng = np.random.default_rng(5)
    data = rng.normal(100.0, 2.0, (256, 256)).astype(np.float32)
    variance = np.full(data.shape, 0.25, dtype=np.float32)  # 4 times too small an RMS
    assert weight_scale(data, variance, np.ones(data.shape, bool), 64, 3) == \
        pytest.approx(4.0, rel=0.02)
