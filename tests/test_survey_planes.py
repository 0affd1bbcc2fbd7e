"""Survey planes through the chain: SExtractor's bad-pixel interpolation (INTERP_TYPE ALL)
against a pixel-by-pixel port of its scan, a saturated star with a zero-weight core and
bleed trail, weight and flag HDUs found by name ('auto'), the Legacy Surveys INVVAR and
MASKBITS planes from desi_cutout (the local imitation of the service), and the same planes
in mask_build, sky_compute and forced_photometry."""

import numpy as np
import pytest
from astropy.io import fits

import desi_cutout
import fake_legacy_service
import forced_photometry
import mask_build
import sep_extract
import sky_compute
from astro_catalogs import read_catalog
from astro_weights import (
    dilated, filtered, filtered_with_bad, FLAGS_WEIGHT_OVERLAP, interpolate_bad_pixels,
    interpolation_sources, weight_flags,
)
from conftest import data_path
from test_desi_cutout import env, fetch, service  # noqa: F401,I100,I201,I202 (fixtures)


def scanned_interpolation(data, variance, bad, xlag, ylag):
    """SExtractor's interpolate(), one pixel at a time as its scan does (the reference)."""
    data, variance, bad = data.copy(), variance.copy(), bad.copy()
    ny, nx = data.shape
    ytimeout = np.zeros(nx, dtype=int)
    below = np.zeros((3, nx))
    for y in range(ny):
        xtimeout = 0
        for x in range(nx):
            if bad[y, x]:
                if xtimeout:
                    xtimeout -= 1
                    data[y, x], variance[y, x], bad[y, x] = \
                        data[y, x - 1], variance[y, x - 1], bad[y, x - 1]
                elif ytimeout[x]:
                    ytimeout[x] -= 1
                    data[y, x], variance[y, x], bad[y, x] = below[0, x], below[1, x], below[2, x]
            else:
                xtimeout, ytimeout[x] = xlag, ylag
            below[:, x] = data[y, x], variance[y, x], bad[y, x]
    return data, variance, bad


def test_interpolation_is_sextractors_scan():
    rng = np.random.default_rng(7)
    for trial in range(120):
        ny, nx = rng.integers(3, 40, 2)
        data, variance = rng.normal(size=(ny, nx)), rng.random((ny, nx))
        bad = rng.random((ny, nx)) < rng.random()
        if trial % 3 == 0:
            bad[:, rng.integers(0, nx)] = True  # a dead column
        xlag, ylag = (int(v) for v in rng.integers(0, 20, 2))
        (ours_data, ours_var), ours_bad = interpolate_bad_pixels([data, variance], bad,
                                                                 xlag, ylag)
        ref_data, ref_var, ref_bad = scanned_interpolation(data, variance, bad, xlag, ylag)
        np.testing.assert_array_equal(ours_bad, ref_bad)
        np.testing.assert_array_equal(ours_data[~ours_bad], ref_data[~ref_bad])
        np.testing.assert_array_equal(ours_var[~ours_bad], ref_var[~ref_bad])


def test_interpolation_takes_every_value_from_a_good_pixel():
    """The fill as flat indices: each target was bad, each source is good; a block takes
    the pixel on its left in its row; a column bad from top to bottom at the left edge
    has nothing in reach and stays bad."""
    bad = np.zeros((40, 30), dtype=bool)
    bad[:, 0] = True
    bad[5:9, 10:14] = True
    targets, sources, still_bad = interpolation_sources(bad, 16, 16)
    assert bad.ravel()[targets].all() and not bad.ravel()[sources].any()
    assert len(np.unique(targets)) == len(targets) == int(bad[:, 1:].sum())
    assert still_bad[:, 0].all() and not still_bad[:, 1:].any()
    rows, cols = np.divmod(targets, 30)
    np.testing.assert_array_equal(sources, rows * 30 + 9)


def test_filtered_with_bad_is_filtering_a_copy_with_the_bad_value():
    """The threshold's variance: filtered in place with the bad pixels summed again gives
    the same float32 sums, to the bit, as filtering a copy that holds the bad value
    (kernels with zero and negative weights, bad pixels at the edges)."""
    rng = np.random.default_rng(4)
    for trial in range(200):
        ny, nx = (int(v) for v in rng.integers(1, 30, 2))
        values = rng.random((ny, nx)).astype(np.float32)
        bad = rng.random((ny, nx)) < rng.random() * 0.3
        kernel = rng.normal(size=(int(rng.choice([1, 3, 5])), int(rng.choice([1, 3, 7]))))
        kernel[rng.random(kernel.shape) < 0.2] = 0
        copy = np.where(bad, np.float32(1e30), values)
        np.testing.assert_array_equal(filtered_with_bad(values, kernel, bad, 1e30),
                                      filtered(copy, kernel))


def test_filtered_is_a_correlation_with_zeros_beyond_the_edges():
    from scipy import ndimage
    rng = np.random.default_rng(8)
    values = rng.random((37, 50)).astype(np.float32)
    kernel = rng.normal(size=(5, 3))
    np.testing.assert_allclose(filtered(values, kernel, band=8),
                               ndimage.correlate(values.astype(np.float64), kernel,
                                                 mode="constant"), rtol=1e-5, atol=1e-5)


def test_dilated_is_scipy_s_binary_dilation():
    from scipy import ndimage
    rng = np.random.default_rng(5)
    for trial in range(200):
        mask = rng.random(tuple(int(v) for v in rng.integers(1, 25, 2))) < 0.1
        shape = tuple(int(v) for v in rng.integers(1, 9, 2))   # even sizes too
        np.testing.assert_array_equal(
            dilated(mask, shape), ndimage.binary_dilation(mask, structure=np.ones(shape, bool)))


def test_weight_flags_inside_and_touching():
    segmap = np.zeros((8, 10), dtype=np.int32)
    segmap[1:3, 1:3], segmap[4:6, 6:8], segmap[0, 9] = 1, 2, 3
    bad = np.zeros_like(segmap, dtype=bool)
    bad[2, 2] = True   # inside object 1
    bad[4, 4] = True   # 2 pixels left of object 2
    # without a filter, only a bad pixel next to the footprint touches it
    assert list(weight_flags(segmap, bad, 3)) == [FLAGS_WEIGHT_OVERLAP | 2, 0, 0]
    # a 3x3 filter spreads the bad pixel's variance one pixel further, as SExtractor's
    assert list(weight_flags(segmap, bad, 3, (3, 3))) == [FLAGS_WEIGHT_OVERLAP | 2, 2, 0]


def extract(run_script, tmp_path, image, *extra, name="cat.tab"):
    out = tmp_path / name
    result = run_script(sep_extract, ["--image", image, "--catalog", out, *extra])
    result.catalog = read_catalog(str(out)) if result.status == 0 else None
    return result


def test_a_saturated_star_with_a_zero_weight_trail_is_one_object(run_script, tmp_path):
    """SExtractor 2.25, WEIGHT_TYPE MAP_WEIGHT, INTERP_TYPE ALL on a star whose saturated
    core and bleed trail have zero weight (tests/make_sextractor_references.py): one
    object, and the same position, area and FLUX_AUTO; left out (INTERP_TYPE NONE), the
    trail cuts the star in two, in SExtractor as here."""
    image, weight = data_path("saturated_star.fits"), data_path("saturated_star_weight.fits")
    filled = extract(run_script, tmp_path, image, "--weight", weight, "--thresh", "5",
                     "--deblend-cont", "1", name="all.tab")
    assert filled.status == 0, filled.err
    nbad = int((fits.getdata(weight) == 0).sum())
    assert f"interpolated {nbad} bad-weight pixel(s)" in filled.out
    ours, theirs = filled.catalog, read_catalog(data_path("sextractor_interp_all.cat"))
    assert ours.nrows == theirs.nrows == 1
    for column, tolerance in (("X_IMAGE", 1e-4), ("Y_IMAGE", 1e-4), ("FLUX_AUTO", 1.0)):
        assert abs(ours[column][0] - theirs[column][0]) <= tolerance, column
    # the variance's rescaling (WEIGHT_GAIN) is measured on the background meshes: 0.55 %
    assert abs(ours["FLUXERR_AUTO"][0] / theirs["FLUXERR_AUTO"][0] - 1) < 0.01
    assert ours["ISOAREA_IMAGE"][0] == theirs["ISOAREA_IMAGE"][0]
    # interpolated pixels count as good, as in SExtractor: FLAGS_WEIGHT 0, FLAGS 0
    assert ours["FLAGS_WEIGHT"][0] == theirs["FLAGS_WEIGHT"][0] == 0
    assert ours["FLAGS"][0] == theirs["FLAGS"][0] == 0
    split = extract(run_script, tmp_path, image, "--weight", weight, "--thresh", "5",
                    "--deblend-cont", "1", "--interp-type", "none", "--mask-type", "none",
                    name="none.tab").catalog
    theirs = read_catalog(data_path("sextractor_interp_none.cat"))
    assert split.nrows == theirs.nrows == 2
    # the threshold rises next to the bad pixels (their infinite variance is filtered with
    # the detection kernel), so both halves are SExtractor's, flagged 2 (bad pixels within
    # the kernel's reach); the bad pixels count as 0 in FLUX_AUTO in both (MASK_TYPE NONE)
    order = np.argsort(split["X_IMAGE"])
    for column, tolerance in (("X_IMAGE", 1e-4), ("Y_IMAGE", 1e-4)):
        np.testing.assert_allclose(split[column][order], np.sort(theirs[column]),
                                   atol=tolerance, err_msg=column)
    np.testing.assert_array_equal(split["ISOAREA_IMAGE"][order],
                                  theirs["ISOAREA_IMAGE"][np.argsort(theirs["X_IMAGE"])])
    np.testing.assert_array_equal(split["FLAGS_WEIGHT"], theirs["FLAGS_WEIGHT"])
    # the bad pixels blank over 10 % of each half's ellipses: crowded (FLAGS 1), as there
    np.testing.assert_array_equal(split["FLAGS"], theirs["FLAGS"])
    assert (split["FLAGS"] == 1).all()
    np.testing.assert_allclose(split["FLUX_AUTO"][order],
                               theirs["FLUX_AUTO"][np.argsort(theirs["X_IMAGE"])], rtol=1e-5)


def planes_file(tmp_path, with_planes=True):
    """A Legacy Surveys cutout as desi_cutout writes it: image, INVVAR, MASKBITS."""
    base = fake_legacy_service.cutout_pixels(120, 120)
    hdus = [fits.PrimaryHDU(base.astype(np.float32))]
    if with_planes:
        hdus += [fits.ImageHDU(fake_legacy_service.invvar_planes(base, "r")[0], name="INVVAR"),
                 fits.ImageHDU(fake_legacy_service.maskbits_plane(base), name="MASKBITS")]
    path = tmp_path / ("planes.fits" if with_planes else "plain.fits")
    fits.HDUList(hdus).writeto(path)
    return path


def test_weight_and_flag_hdus_found_by_name(run_script, tmp_path):
    path = planes_file(tmp_path)
    auto = extract(run_script, tmp_path, path, "--weight", path, "--weight-hdu", "auto",
                   "--flag-image", path, "--flag-hdu", "auto", name="auto.tab")
    assert auto.status == 0, auto.err
    assert "weight map: HDU 1 (INVVAR) of the file" in auto.out
    assert "flag image: HDU 2 (MASKBITS) of the file" in auto.out
    named = extract(run_script, tmp_path, path, "--weight", path, "--weight-hdu", "invvar",
                    "--flag-image", path, "--flag-hdu", "2", name="named.tab")
    np.testing.assert_array_equal(auto.catalog["FLUX_AUTO"], named.catalog["FLUX_AUTO"])
    assert list(auto.catalog)[-4:] == ["IMAFLAGS_ISO", "NIMAFLAGS_ISO", "FLAGS", "FLAGS_WEIGHT"]
    rows, cols = np.nonzero(fits.getdata(path, "MASKBITS") & 2)  # the BRIGHT star's pixels
    bright = np.argmin(np.hypot(auto.catalog["X_IMAGE"] - 1 - cols.mean(),
                                auto.catalog["Y_IMAGE"] - 1 - rows.mean()))
    assert auto.catalog["IMAFLAGS_ISO"][bright] == 2 | 8  # BRIGHT and SATUR_R
    # a plain image: no plane of either name, so neither weights nor flags, said in the log
    plain = planes_file(tmp_path, with_planes=False)
    unweighted = extract(run_script, tmp_path, plain, "--weight", plain, "--weight-hdu",
                         "auto", "--flag-image", plain, "--flag-hdu", "auto", name="plain.tab")
    assert unweighted.status == 0, unweighted.err
    assert "no weight map HDU (INVVAR, IVAR, WGT, WEIGHT, WHT) in plain.fits" in unweighted.out
    assert "IMAFLAGS_ISO" not in unweighted.catalog and "FLAGS_WEIGHT" not in unweighted.catalog


@pytest.mark.parametrize("argv, message", [
    (["--weight-hdu", "WGT"], "Error: the weight map has no HDU named WGT (named HDUs: "
                              "0=PRIMARY, 1=INVVAR, 2=MASKBITS)"),
    (["--weight-hdu", "5"], "Error: the weight map has 3 HDU(s) (0..2); HDU 5 does not exist"),
    (["--weight-hdu", "a b"], "Error: --weight-hdu: 'a b' is neither an HDU number"),
])
def test_bad_hdu_choices(run_script, tmp_path, argv, message):
    path = planes_file(tmp_path)
    result = extract(run_script, tmp_path, path, "--weight", path, *argv)
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err


def test_desi_invvar_and_maskbits_planes(run_script, tmp_path, env):  # noqa: F811
    result = fetch(run_script, tmp_path, "--ra", "150.1", "--dec", "2.2", "--size", "100",
                   "--bands", "gr", "--fits", "--invvar", "--maskbits")
    assert result.status == 0, result.err
    assert "wrote g.fits, r.fits (with INVVAR and MASKBITS HDUs)" in result.out
    base = fake_legacy_service.cutout_pixels(100, 100)
    for band in "gr":
        with fits.open(result.dir / f"{band}.fits") as hdul:
            assert [h.name for h in hdul] == ["PRIMARY", "INVVAR", "MASKBITS"]
            np.testing.assert_array_equal(hdul["INVVAR"].data,
                                          fake_legacy_service.invvar_planes(base, band)[0])
            assert hdul["MASKBITS"].data.dtype.kind == "i"
            np.testing.assert_array_equal(hdul["MASKBITS"].data,
                                          fake_legacy_service.maskbits_plane(base))
            for hdu in hdul:
                assert hdu.header["CTYPE1"] == "RA---TAN" and hdu.header["BAND"] == band
            assert hdul["INVVAR"].header["BUNIT"] == "nanomaggy-2"
            assert "MAGZP" not in hdul["MASKBITS"].header
    # straight into the extraction: the dead column and the trail are interpolated
    out = extract(run_script, tmp_path, result.dir / "r.fits", "--weight",
                  result.dir / "r.fits", "--weight-hdu", "auto", "--flag-image",
                  result.dir / "r.fits", "--flag-hdu", "auto")
    assert out.status == 0, out.err
    assert "interpolated" in out.out and (out.catalog["IMAFLAGS_ISO"] > 0).any()


def test_desi_planes_need_a_fine_pixel_scale(run_script, tmp_path, env):  # noqa: F811
    result = fetch(run_script, tmp_path, "--ra", "150.1", "--dec", "2.2", "--pixscale", "1",
                   "--fits", "--maskbits")
    assert result.status == 2
    assert result.err.strip() == ("Error: the service gives inverse-variance and maskbits "
                                  "planes only at pixel scales below 0.524\" (got 1); ask for "
                                  "a finer scale or leave them out")


def test_an_answer_without_the_asked_planes(tmp_path):
    body = fake_legacy_service.fits_answer(150.1, 2.2, 32, 32, 0.262, "r")
    request = desi_cutout.CutoutRequest(bands="r", invvar=True)
    with pytest.raises(desi_cutout.ServiceError, match="the service sent no inverse-variance "
                                                       "plane"):
        desi_cutout.read_fits_answer(body, request)


def joined_catalog(run_script, tmp_path, image):
    out = tmp_path / "objects.tab"
    assert run_script(sep_extract, ["--image", image, "--catalog", out]).status == 0
    return out


def test_mask_build_masks_chosen_maskbits(run_script, tmp_path):
    path = planes_file(tmp_path)
    catalog = joined_catalog(run_script, tmp_path, path)
    base_path = tmp_path / "base.fits"
    assert run_script(mask_build, ["--catalog", catalog, "--image", path,
                                   "--output", base_path]).status == 0
    base = fits.getdata(base_path)
    bits = fits.getdata(path, "MASKBITS")
    out = tmp_path / "mask.fits"
    for argv, chosen in ((["--flag-bits", "8"], (bits & 8) != 0),
                         (["--flag-bits", "2"], (bits & 2) != 0), ([], bits != 0)):
        result = run_script(mask_build, ["--catalog", catalog, "--image", path, "--output", out,
                                         "--flag-image", path, "--flag-hdu", "MASKBITS",
                                         *argv])
        assert result.status == 0, result.err
        mask, header = fits.getdata(out), fits.getheader(out)
        assert header["MASKDQ"] == header["MASKSAT"] + 1
        # flagged sky pixels get MASKDQ; objects keep their NUMBER
        dq = mask == header["MASKDQ"]
        np.testing.assert_array_equal(dq, chosen & (base == 0))
        np.testing.assert_array_equal(mask[~dq], base[~dq])
        assert f"flag image: {int(dq.sum())} flagged sky pixel(s) masked" in result.out
    bad = run_script(mask_build, ["--catalog", catalog, "--image", path, "--output", out,
                                  "--flag-image", path, "--flag-codes", "x"])
    assert bad.status == 2 and "'x' is not a list of positive whole numbers" in bad.err


def test_sky_compute_never_takes_zero_weight_or_flagged_pixels(run_script, tmp_path):
    path = planes_file(tmp_path)
    catalog = joined_catalog(run_script, tmp_path, path)
    mask = tmp_path / "mask.fits"
    assert run_script(mask_build, ["--catalog", catalog, "--image", path,
                                   "--output", mask]).status == 0
    runs = {}
    for name, extra in (("plain", []), ("weight", ["--weight", path, "--weight-hdu", "auto"]),
                        ("flags", ["--flag-image", path, "--flag-hdu", "auto"])):
        out = tmp_path / f"{name}.tab"
        result = run_script(sky_compute, ["--image", path, "--catalog", catalog, "--mask", mask,
                                          "--output", out, *extra])
        assert result.status == 0, result.err
        runs[name] = read_catalog(str(out))
    invvar, bits = fits.getdata(path, "INVVAR"), fits.getdata(path, "MASKBITS")
    labels = sky_compute.never_sky(np.zeros(invvar.shape, dtype=np.int64), str(path), "auto",
                                   str(path), "auto", None)
    np.testing.assert_array_equal(labels == -1, (invvar == 0) | (bits != 0))
    # the objects whose rings cross those pixels get another sky, the others the same
    for name in ("weight", "flags"):
        changed = runs[name]["SKY_NPIX"] != runs["plain"]["SKY_NPIX"]
        assert 0 < changed.sum() < len(changed), name


def test_forced_photometry_weighs_by_each_images_own_plane(run_script, tmp_path):
    """Measured in its own detection image, with the same INVVAR plane, every object gets
    sep_extract's FLUX_AUTO and FLUXERR_AUTO back: the same weights, the same interpolated
    pixels (INTERP_TYPE ALL for the measurement image too, as SExtractor's)."""
    path = data_path("desi_r_planes.fits")
    results = {}
    weighted = ["--weight-type", "map_weight"]
    for name, extra in (("plain", []), ("auto", ["--weight-hdu", "auto", *weighted]),
                        ("none", ["--weight-hdu", "INVVAR", "--interp-type", "none",
                                  *weighted])):
        out = tmp_path / f"{name}.tab"
        result = run_script(forced_photometry, ["--catalog", data_path("desi_r_planes.tabular"),
                                                "--image", path, "--band", "r",
                                                "--output", out, *extra])
        assert result.status == 0, result.err
        results[name] = read_catalog(str(out))
        if name == "auto":
            assert "weight of band r: HDU 1 (INVVAR) of the file" in result.out
    auto = results["auto"]
    np.testing.assert_allclose(auto["FLUX_AUTO_r"], auto["FLUX_AUTO"], rtol=1e-5)
    np.testing.assert_allclose(auto["FLUXERR_AUTO_r"], auto["FLUXERR_AUTO"], rtol=1e-5)
    # left out instead: the objects over zero-weight pixels lose flux and are flagged
    left_out = results["none"]
    changed = ~np.isclose(left_out["FLUX_AUTO_r"], auto["FLUX_AUTO_r"], rtol=1e-6)
    assert 0 < changed.sum() < auto.nrows
    assert np.all(left_out["FLAGS_r"][changed] & forced_photometry.FLAG_MASKED)
