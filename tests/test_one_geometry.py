"""One catalog drawn through every tool: the mask, the regions, the overlay, the sky rings
and the join all see the same ellipse of each object (astro_ellipses.kron_ellipses)."""

import numpy as np
import pytest
from astropy.io import fits

import catalog_join
import mask_build
import sky_compute
from astro_catalogs import read_catalog, write_catalog
from astro_ellipses import (
    inside_ellipses, kron_ellipses, MIN_AXIS_RATIO, MIN_SEMI_MAJOR,
)
from astro_pictures import catalog_layer
from astro_regions import catalog_region_lines, read_regions, write_regions
from test_catalog_join import at, make_catalog  # noqa: I100,I201

SCALE, OFFSET = 1.5, 0.5


@pytest.fixture
def catalog():
    """Ordinary objects, and ones that hit each clamp: a size below one pixel and a
    needle (ELLIPTICITY 0.999 -> b/a 0.005)."""
    return make_catalog([
        at(40, 30, NUMBER=1, KRON_RADIUS=3.0, A_IMAGE=4.0, ELLIPTICITY=0.4, THETA_IMAGE=30.0),
        at(90, 60, NUMBER=2, KRON_RADIUS=2.0, A_IMAGE=3.0, ELLIPTICITY=0.0, THETA_IMAGE=-60.0),
        at(20, 80, NUMBER=3, KRON_RADIUS=0.1, A_IMAGE=0.5, ELLIPTICITY=0.2, THETA_IMAGE=10.0),
        at(120, 20, NUMBER=4, KRON_RADIUS=3.0, A_IMAGE=5.0, ELLIPTICITY=0.999,
           THETA_IMAGE=80.0),
    ])


def test_the_clamps(catalog):
    e = kron_ellipses(catalog, SCALE, OFFSET)
    assert e.major[2] == MIN_SEMI_MAJOR                      # 1.5 x 0.05 + 0.5 < 1 px
    assert e.minor[3] == pytest.approx(e.major[3] * MIN_AXIS_RATIO)
    np.testing.assert_allclose(e.major[:2], SCALE * np.array([12.0, 6.0]) + OFFSET)
    np.testing.assert_allclose(e.ratio[:2], [0.6, 1.0])


def test_mask_regions_overlay_sky_and_join_agree(run_script, tmp_path, catalog):
    ellipses = kron_ellipses(catalog, SCALE, OFFSET)
    shape = (100, 150)
    image = tmp_path / "flat.fits"
    fits.PrimaryHDU(np.zeros(shape, dtype=np.float32)).writeto(image)
    cat_path = tmp_path / "cat.tab"
    write_catalog(str(cat_path), catalog)

    # the mask: each object's pixels are exactly those inside its ellipse
    out = tmp_path / "mask.fits"
    result = run_script(mask_build, ["--catalog", cat_path, "--image", image, "--output", out,
                                     "--scale", SCALE, "--offset", OFFSET])
    assert result.status == 0, result.err
    mask = fits.getdata(out)
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    for i, number in enumerate(catalog["NUMBER"]):
        inside = inside_ellipses(cols + 1.0, rows + 1.0, ellipses.x[i], ellipses.y[i],
                                 ellipses.major[i], ellipses.minor[i], ellipses.theta[i])
        np.testing.assert_array_equal(mask == number, inside)  # no overlaps here

    # the regions: written and read back, the same ellipses
    regions = tmp_path / "r.reg"
    write_regions(str(regions), catalog_region_lines(catalog, SCALE, OFFSET))
    shapes = [r for r in read_regions(str(regions)) if r.shape == "ellipse"]
    params = np.array([r.params for r in shapes])
    np.testing.assert_allclose(params[:, 0], ellipses.x)
    np.testing.assert_allclose(params[:, 2], ellipses.major, atol=1e-4)
    np.testing.assert_allclose(params[:, 3], ellipses.minor, atol=1e-4)
    np.testing.assert_allclose(params[:, 4], ellipses.theta, atol=1e-3)

    # the overlay: full axes of the same ellipses, 0-based centres
    layer = catalog_layer(catalog, kron_ellipses(catalog, SCALE, OFFSET, centre="peak"))
    np.testing.assert_allclose(layer["width"], 2 * ellipses.major)
    np.testing.assert_allclose(layer["height"], 2 * ellipses.minor)
    np.testing.assert_allclose(layer["x"], ellipses.x - 1)

    # the sky rings start at the same inner ellipse
    settings = sky_compute.SkySettings(scale=SCALE, offset=OFFSET)
    x0, y0, inner, ratio, theta = sky_compute.object_geometry(catalog, settings)
    np.testing.assert_allclose(inner, ellipses.major)
    np.testing.assert_allclose(ratio, ellipses.ratio)
    np.testing.assert_allclose(x0, ellipses.x - 1)

    # the join: a point is covered exactly when it is inside one of these ellipses
    points = np.column_stack([cols.ravel() + 1.0, rows.ravel() + 1.0])[::7]
    join = kron_ellipses(catalog, SCALE)
    expected = np.zeros(len(points), dtype=bool)
    for i in range(catalog.nrows):
        expected |= inside_ellipses(points[:, 0], points[:, 1], join.x[i], join.y[i],
                                    join.major[i], join.minor[i], join.theta[i])
    np.testing.assert_array_equal(
        catalog_join.covered_by_ellipses(points, read_catalog(str(cat_path)), SCALE),
        expected)
    assert expected.sum() > 50
