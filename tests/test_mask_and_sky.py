"""mask_build and sky_compute on synthetic images whose answers are known."""

import numpy as np
import pytest
from astropy.io import fits

import mask_build
import sky_compute
from astro_catalogs import read_catalog, write_catalog
from astro_common import ToolError
from astro_regions import read_regions
from test_catalog_join import at, make_catalog  # noqa: I100,I201


def write_image(path, data, header=None):
    fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header).writeto(path, overwrite=True)
    return path


def write_cat(tmp_path, rows, name="cat.tab"):
    path = tmp_path / name
    write_catalog(str(path), make_catalog(rows))
    return path


def build(run_script, tmp_path, catalog, image, *extra):
    out = tmp_path / "mask.fits"
    result = run_script(mask_build, ["--catalog", catalog, "--image", image, "--output", out,
                                     *extra])
    result.mask = fits.getdata(out) if result.status == 0 else None
    result.header = fits.getheader(out) if result.status == 0 else None
    return result


def brute_force_ellipse(shape, x_peak, y_peak, major, minor, theta):
    """Pixel by pixel (the slow, obvious way): 1-based centre, 0-based array indices."""
    mask = np.zeros(shape, dtype=bool)
    phi = np.radians(theta)
    for row in range(shape[0]):
        for col in range(shape[1]):
            dx, dy = (col + 1) - x_peak, (row + 1) - y_peak
            u = dx * np.cos(phi) + dy * np.sin(phi)
            v = -dx * np.sin(phi) + dy * np.cos(phi)
            mask[row, col] = (u / major) ** 2 + (v / minor) ** 2 < 1
    return mask


@pytest.fixture
def flat_image(tmp_path):
    return write_image(tmp_path / "flat.fits", np.zeros((80, 100)))


@pytest.mark.parametrize("kron, a, e, theta", [
    (2.0, 3.0, 0.0, 0.0), (2.5, 4.0, 0.5, 30.0), (3.0, 5.0, 0.7, -75.0), (1.0, 6.0, 0.3, 90.0),
])
def test_ellipse_pixels_match_an_independent_count(run_script, tmp_path, flat_image, kron, a,
                                                   e, theta):
    catalog = write_cat(tmp_path, [at(40, 37, KRON_RADIUS=kron, A_IMAGE=a, ELLIPTICITY=e,
                                      THETA_IMAGE=theta)])
    result = build(run_script, tmp_path, catalog, flat_image, "--scale", "1.5")
    major = 1.5 * kron * a
    expected = brute_force_ellipse((80, 100), 40, 37, major, major * (1 - e), theta)
    np.testing.assert_array_equal(result.mask == 1, expected)
    assert expected.sum() > 20


def test_no_off_by_one_the_mask_is_centred_on_the_peak(run_script, tmp_path, flat_image):
    catalog = write_cat(tmp_path, [at(30, 20, KRON_RADIUS=2.0, A_IMAGE=2.0)])
    mask = build(run_script, tmp_path, catalog, flat_image, "--scale", "1").mask
    rows, cols = np.nonzero(mask)
    # array element [19, 29] is the 1-based pixel (30, 20); CluSex's masks are 1 px off
    assert (rows.mean(), cols.mean()) == (19.0, 29.0)
    # radius 4 px, strict: the 45 pixels with dx^2 + dy^2 < 16
    assert mask[19, 29] == 1 and mask.sum() == 45


def test_labels_and_overlap_smaller_object_keeps_its_number(run_script, tmp_path, flat_image):
    rows = [at(50, 40, NUMBER=7, KRON_RADIUS=4.0, A_IMAGE=5.0),   # R = 20 (large)
            at(55, 40, NUMBER=3, KRON_RADIUS=1.0, A_IMAGE=2.0),   # R = 2, inside the large
            at(10, 10, NUMBER=12, KRON_RADIUS=1.0, A_IMAGE=3.0)]
    catalog = write_cat(tmp_path, rows)
    result = build(run_script, tmp_path, catalog, flat_image, "--scale", "1")
    mask = result.mask
    small = brute_force_ellipse((80, 100), 55, 40, 2.0, 2.0, 0.0)
    large = brute_force_ellipse((80, 100), 50, 40, 20.0, 20.0, 0.0)
    assert np.all(mask[small] == 3)
    assert np.all(mask[large & ~small] == 7)
    assert set(np.unique(mask)) == {0, 3, 7, 12}
    assert result.header["MASKSAT"] == 13 and result.header["MASKSCL"] == 1.0
    assert mask.dtype == np.dtype(">i4")


def test_binary_mask_and_removal(run_script, tmp_path, flat_image):
    rows = [at(20, 20, NUMBER=1), at(50, 40, NUMBER=2), at(80, 60, NUMBER=3)]
    catalog = write_cat(tmp_path, rows)
    full = build(run_script, tmp_path, catalog, flat_image).mask
    numbers_file = tmp_path / "remove.txt"
    numbers_file.write_text("# objects to unmask\n3\n")
    result = build(run_script, tmp_path, catalog, flat_image, "--remove", "1",
                   "--remove-file", numbers_file, "--remove-at", "50,40", "--binary")
    assert "removed object(s): 1, 2, 3" in result.out
    assert not result.mask.any()
    binary = build(run_script, tmp_path, catalog, flat_image, "--binary", "--remove", "2").mask
    assert binary.dtype == np.uint8 and set(np.unique(binary)) == {0, 1}
    np.testing.assert_array_equal(binary, (full > 0) & (full != 2))


def saturated_field():
    """A flat sky with a saturated star at (60, 40) and a bleed trail along y."""
    data = np.full((100, 120), 100.0)
    yy, xx = np.mgrid[0:100, 0:120]
    data += 80000 * np.exp(-((xx - 59) ** 2 + (yy - 39) ** 2) / (2 * 3.0 ** 2))
    data[39 - 25:39 + 26, 58:61] = 70000.0  # bleed trail: 51 x 3 pixels
    return data


def test_saturated_star_box_covers_the_bleed_trail(run_script, tmp_path):
    image = write_image(tmp_path / "sat.fits", saturated_field(),
                        fits.Header({"SATURATE": 60000.0}))
    rows = [at(60, 40, NUMBER=1, KRON_RADIUS=3.5, A_IMAGE=2.0, FLAGS=4),
            at(61, 62, NUMBER=2, KRON_RADIUS=1.0, A_IMAGE=1.5),    # on the trail, in the box
            at(15, 15, NUMBER=3, KRON_RADIUS=1.0, A_IMAGE=2.0)]
    catalog = write_cat(tmp_path, rows)
    regions = tmp_path / "sat.reg"
    result = build(run_script, tmp_path, catalog, image, "--saturation-regions", regions,
                   "--sat-scale", "1", "--sat-offset", "4", "--sat-method", "0")
    assert result.status == 0, result.err
    saturated = saturated_field() >= 60000
    rows_, cols_ = np.nonzero(saturated)
    # the saturated pixels' box (x 59..61 (+star), y 15..65) grown by 1 x side + 4
    box = result.mask == 4
    assert result.header["MASKSAT"] == 4
    assert np.all(box[saturated])
    assert box[rows_.min() - 2, 59] and box[rows_.max() + 2, 59]
    assert not box[rows_.min() - 3, 59] and not box[rows_.max() + 3, 59]
    # the saturated star and the object inside its box have no ellipse; object 3 does
    assert not np.any(result.mask == 1) and not np.any(result.mask == 2)
    assert np.any(result.mask == 3)
    lines = regions.read_text().splitlines()
    assert lines[2] == "image" and lines[3].startswith("box(") and len(lines) == 4
    shapes = read_regions(str(regions))
    (xc, yc, sx, sy, angle), = [r.params for r in shapes]
    assert (xc, yc) == (60.0, 40.0) and angle == 0
    assert sy == (rows_.max() - rows_.min() + 1) + 4


def test_elongated_box_gets_a_perpendicular_box(run_script, tmp_path):
    image = write_image(tmp_path / "sat.fits", saturated_field())
    catalog = write_cat(tmp_path, [at(60, 40, KRON_RADIUS=3.5, A_IMAGE=2.0, FLAGS=4)])
    regions = tmp_path / "sat.reg"
    result = build(run_script, tmp_path, catalog, image, "--saturation-regions", regions,
                   "--satur-level", "60000", "--sat-q", "0.7", "--sat-method", "3")
    boxes = [r.params for r in read_regions(str(regions))]
    assert len(boxes) == 2
    (_, _, sx, sy, _), (_, _, sx2, sy2, _) = boxes
    assert sy > sx and sx2 > sy2      # the second box lies across the trail
    assert "2 saturated-star box(es)" in result.out


def test_flagged_star_without_saturated_pixels_is_not_fatal(run_script, tmp_path, flat_image):
    catalog = write_cat(tmp_path, [at(30, 30, FLAGS=4), at(60, 30)])
    result = build(run_script, tmp_path, catalog, flat_image, "--satur-level", "1000")
    assert result.status == 0
    assert "object 1 is flagged saturated but has no pixel >= 1000 near it" in result.out


def test_user_regions_are_masked(run_script, tmp_path, flat_image):
    regions = tmp_path / "user.reg"
    regions.write_text("# Region file format: DS9 version 4.1\nglobal color=green\nimage\n"
                       "box(10,10,5,3,0)\ncircle(50,40,3)\n"
                       "polygon(80,10,90,10,90,20) # a triangle\npoint(5,5) # marker\n"
                       "ellipse(30,60,6,3,90)\n")
    catalog = write_cat(tmp_path, [])
    result = build(run_script, tmp_path, catalog, flat_image, "--regions", regions)
    assert result.status == 0, result.err
    mask = result.mask > 0
    assert mask[8:11, 7:12].all() and mask[:, :12].sum() == 15      # box 5 x 3
    assert mask[30:50, 40:60].sum() == brute_force_ellipse((80, 100), 50, 40, 3, 3, 0).sum()
    assert mask[50:70, 20:40].sum() == brute_force_ellipse((80, 100), 30, 60, 6, 3, 90).sum()
    assert mask[9:20, 79:90].sum() > 40                                 # the triangle
    assert "regions: 4 shape(s) masked" in result.out


@pytest.mark.parametrize("text, message", [
    ("image\nannulus(10,10,3,5)\n", "line 2: unknown shape 'annulus'"),
    ("fk5\ncircle(150.1,2.2,3\")\n", "line 2: coordinates are 'fk5'"),
    ("image\ncircle(10,ten,3)\n", "line 2: 'circle(10,ten,3)' has a non-numeric parameter"),
    ("image\nbox(10,10)\n", "line 2: box has 2 parameters"),
    ("image\nthis is not a region\n", "line 2: 'this is not a region' is not a ds9 shape"),
])
def test_malformed_region_files(run_script, tmp_path, flat_image, text, message):
    regions = tmp_path / "bad.reg"
    regions.write_text(text)
    result = build(run_script, tmp_path, write_cat(tmp_path, []), flat_image, "--regions",
                   regions)
    assert result.status == 2
    assert result.err.strip() == f"Error: the region file, {message}" or \
        message in result.err, result.err


def test_mask_bad_inputs(run_script, tmp_path, flat_image):
    bad = tmp_path / "bad.tab"
    bad.write_text("#NUMBER\tX_IMAGE\n1\t3\n")
    result = build(run_script, tmp_path, bad, flat_image)
    assert result.status == 2 and "the catalog lacks the column(s) XPEAK_IMAGE" in result.err
    result = build(run_script, tmp_path, write_cat(tmp_path, [at(5, 5)]), flat_image,
                   "--remove", "x1")
    assert result.status == 2 and "--remove: 'x1' is not an object NUMBER" in result.err


# --------------------------------------------------------------------------------------
# sky_compute
# --------------------------------------------------------------------------------------

def gaussian(shape, x, y, flux, sigma):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    r2 = (xx - x + 1) ** 2 + (yy - y + 1) ** 2
    return flux / (2 * np.pi * sigma ** 2) * np.exp(-r2 / (2 * sigma ** 2))


def sky_run(run_script, tmp_path, data, rows, mask=None, *extra):
    image = write_image(tmp_path / "sky.fits", data)
    catalog = write_cat(tmp_path, rows)
    mask_path = write_image(tmp_path / "mask.fits",
                            np.zeros(data.shape) if mask is None else mask)
    out = tmp_path / "sky.tab"
    result = run_script(sky_compute, ["--image", image, "--catalog", catalog, "--mask",
                                      mask_path, "--output", out, *extra])
    result.catalog = read_catalog(str(out)) if result.status == 0 else None
    return result


@pytest.fixture(scope="module")
def noisy_sky():
    rng = np.random.default_rng(7)
    shape = (300, 300)
    data = 100.0 + rng.normal(0, 1.0, shape)
    for x, y, flux in ((150, 150, 3e4), (60, 70, 1e4), (230, 90, 2e4)):
        data += gaussian(shape, x, y, flux, 2.5)
    rows = [at(150, 150, KRON_RADIUS=3.5, A_IMAGE=2.5, THETA_IMAGE=33.0),
            at(60, 70, KRON_RADIUS=3.5, A_IMAGE=2.5), at(230, 90, KRON_RADIUS=3.5, A_IMAGE=2.5)]
    return data, rows


@pytest.mark.parametrize("method", ["gradient", "boxes"])
def test_flat_sky_recovered_within_the_noise(run_script, tmp_path, noisy_sky, method):
    data, rows = noisy_sky
    result = sky_run(run_script, tmp_path, data, rows, None, "--method", method,
                     "--ring-width", "10", "--box-size", "10")
    assert result.status == 0, result.err
    sky = result.catalog
    assert np.all(np.abs(sky["BACKGROUND"] - 100.0) < 0.3)
    assert np.all(sky["SKY_FLAG"] == 0) and np.all(sky["SKY_NPIX"] > 50)
    np.testing.assert_array_equal(sky["THETA_IMAGE"], [33.0, 0.0, 0.0])  # unchanged
    assert list(sky)[-4:] == ["SKY_STD", "SKY_NPIX", "SKY_RADIUS", "SKY_FLAG"]
    if method == "gradient":
        assert np.all(np.abs(sky["SKY_STD"] - 1.0) < 0.2)  # pixel noise in the ring


@pytest.mark.parametrize("method", ["gradient", "boxes"])
def test_tilted_sky_is_the_local_value(run_script, tmp_path, method):
    yy, xx = np.mgrid[0:300, 0:300]
    data = 100.0 + 0.2 * xx + 0.05 * yy + gaussian((300, 300), 150, 150, 3e4, 2.5)
    # boxes spread over MaxScale x K x A: a steep tilt needs them close to the object
    result = sky_run(run_script, tmp_path, data, [at(150, 150, KRON_RADIUS=3.5, A_IMAGE=2.5)],
                     None, "--method", method, "--ring-width", "10", "--max-scale", "6",
                     "--nbox", "40", "--box-size", "10")
    expected = 100.0 + 0.2 * 149 + 0.05 * 149
    sky = result.catalog
    if method == "gradient":  # a ring is symmetric: its mean is the value at the centre
        assert abs(sky["BACKGROUND"][0] - expected) < 0.5
    else:  # the median of 40 boxes spread over about +-7 in sky level
        assert abs(sky["BACKGROUND"][0] - expected) < 0.4 * sky["SKY_STD"][0]


def test_masked_neighbour_is_ignored(run_script, tmp_path):
    shape = (300, 300)
    rng = np.random.default_rng(1)
    data = 100.0 + rng.normal(0, 1.0, shape) + gaussian(shape, 150, 150, 3e4, 2.5)
    data += gaussian(shape, 180, 150, 5e6, 6.0)  # a bright neighbour 30 px away
    rows = [at(150, 150, NUMBER=1, KRON_RADIUS=3.5, A_IMAGE=2.5),
            at(180, 150, NUMBER=2, KRON_RADIUS=3.5, A_IMAGE=6.0)]
    yy, xx = np.mgrid[0:300, 0:300]
    mask = np.where((xx - 179) ** 2 + (yy - 149) ** 2 < 45 ** 2, 2, 0)
    masked = sky_run(run_script, tmp_path, data, rows, mask, "--ring-width", "10")
    unmasked = sky_run(run_script, tmp_path, data, rows, None, "--ring-width", "10")
    assert abs(masked.catalog["BACKGROUND"][0] - 100.0) < 0.3
    assert unmasked.catalog["BACKGROUND"][0] > 101.0


def test_ring_stops_where_the_profile_flattens():
    """A profile falling until radius 60 and flat after: the ring holding 60 is chosen."""
    sums = np.array([500.0, 300, 150, 100, 100.5, 100.2]) * 10
    counts = np.full(6, 10)
    ring, turned = sky_compute.choose_ring(sums, sums, counts)
    assert (ring, turned) == (3, True)
    ring, turned = sky_compute.choose_ring(sums[:3], sums[:3], counts[:3])
    assert (ring, turned) == (2, False)
    counts[2] = 0  # an empty ring is skipped: 300 -> 100 -> 100.5 turns at ring 3
    assert sky_compute.choose_ring(sums, sums, counts) == (3, True)


def test_gradient_that_never_turns_is_flagged(run_script, tmp_path):
    yy, xx = np.mgrid[0:120, 0:120]
    data = 1e4 / (1.0 + np.hypot(xx - 59, yy - 59))  # falls all the way to the edge
    result = sky_run(run_script, tmp_path, data, [at(60, 60, KRON_RADIUS=2.0, A_IMAGE=2.0)],
                     None, "--ring-width", "5")
    assert result.catalog["SKY_FLAG"][0] == 1
    assert "1 partial (flag 1)" in result.out


def test_object_without_sky_pixels(run_script, tmp_path):
    data = np.full((60, 60), 100.0)
    result = sky_run(run_script, tmp_path, data, [at(30, 30)], np.full((60, 60), 5))
    assert result.catalog["SKY_FLAG"][0] == 2 and np.isnan(result.catalog["BACKGROUND"][0])


def test_random_boxes_are_reproducible(run_script, tmp_path, noisy_sky):
    data, rows = noisy_sky
    runs = [sky_run(run_script, tmp_path, data, rows, None, "--method", "boxes", "--seed",
                    str(seed)).catalog["BACKGROUND"] for seed in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_sky_bad_inputs(run_script, tmp_path):
    data = np.full((60, 60), 100.0)
    image = write_image(tmp_path / "i.fits", data)
    mask = write_image(tmp_path / "m.fits", np.zeros((50, 60)))
    catalog = write_cat(tmp_path, [at(30, 30)])
    result = run_script(sky_compute, ["--image", image, "--catalog", catalog, "--mask", mask,
                                      "--output", tmp_path / "o.tab"])
    assert result.status == 2
    assert "Error: the mask is 60 x 50 pixels but the image is 60 x 60" in result.err
    bad = tmp_path / "bad.tab"
    bad.write_text("#NUMBER\tXPEAK_IMAGE\tYPEAK_IMAGE\n1\t3\t4\n")
    result = run_script(sky_compute, ["--image", image, "--catalog", bad, "--mask", image,
                                      "--output", tmp_path / "o.tab"])
    assert result.status == 2 and "lacks the column(s) KRON_RADIUS, A_IMAGE, THETA_IMAGE" \
        in result.err


def test_paint_ellipses_chunks_give_the_same_mask(monkeypatch):
    rng = np.random.default_rng(5)
    n = 200
    from astro_ellipses import Ellipses
    args = (np.arange(1, n + 1), Ellipses(rng.uniform(1, 100, n), rng.uniform(1, 80, n),
                                          rng.uniform(1, 8, n), rng.uniform(0.5, 4, n),
                                          rng.uniform(-90, 90, n)))
    whole = mask_build.paint_ellipses((80, 100), *args)
    monkeypatch.setattr(mask_build, "MAX_PAIRS", 500)
    assert np.array_equal(mask_build.paint_ellipses((80, 100), *args), whole)


def test_region_reader_errors_are_tool_errors(tmp_path):
    path = tmp_path / "r.reg"
    path.write_text("image\n-circle(1,2,3)\n")
    with pytest.raises(ToolError, match="exclusion regions"):
        read_regions(str(path))
