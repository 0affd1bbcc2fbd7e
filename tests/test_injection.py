"""validation/injection.py: what it injects is what it says, and sep_extract recovers an
injected source of known flux on a flat background within its error."""

import os
import sys

import numpy as np
import pytest
from astropy.io import fits

import sep_extract
from astro_catalogs import read_catalog
from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "validation"))
import injection  # noqa: E402,I100


def test_the_added_flux_is_the_reported_one():
    image = np.zeros((120, 120), dtype=np.float32)
    sources = [{"x": 60.3, "y": 59.7, "flux": 5000.0, "kind": kind, "r_eff": 4.0, "q": 0.7,
                "theta": 0.4} for kind in ("star", "n1", "n4")]
    for source in sources:
        out, fluxes = injection.inject(image, [source], 3.0)
        assert out.sum() == pytest.approx(fluxes[0], rel=1e-5)
        assert fluxes[0] == pytest.approx(5000.0, rel=0.01)  # the stamp holds its light
    psf = injection.moffat_kernel(3.0)
    assert psf.sum() == pytest.approx(1.0)
    half = psf.shape[0] // 2
    profile = psf[half, half - 3:half + 4]
    assert profile[1] < profile[3] / 2 < profile[2]  # FWHM 3 px: half maximum between 1 and 2


def test_an_injected_star_is_recovered_within_its_error(run_script, tmp_path):
    rng = np.random.default_rng(5)
    background = (100.0 + rng.normal(0, 5.0, (128, 128))).astype(np.float32)
    # S/N about 50: the 2 % of a Moffat star's light outside its Kron ellipse is within the
    # error (at S/N 300 it would not be: FLUX_AUTO is not a total flux)
    image, fluxes = injection.inject(background, [{"x": 64.2, "y": 63.6, "flux": 3000.0,
                                                   "kind": "star"}], 3.0)
    path = tmp_path / "star.fits"
    fits.PrimaryHDU(image).writeto(path)
    out = tmp_path / "cat.tab"
    result = run_script(sep_extract, ["--image", path, "--catalog", out])
    assert result.status == 0, result.err
    catalog = read_catalog(str(out))
    assert catalog.nrows == 1
    assert abs(catalog["X_IMAGE"][0] - 65.2) < 0.1 and abs(catalog["Y_IMAGE"][0] - 64.6) < 0.1
    assert abs(catalog["FLUX_AUTO"][0] - fluxes[0]) < 3 * catalog["FLUXERR_AUTO"][0]


def test_matching_leaves_out_the_image_s_own_objects():
    from astro_catalogs import Catalog
    catalog = Catalog([("X_IMAGE", np.array([11.0, 31.0])), ("Y_IMAGE", np.array([11.0, 31.0]))])
    truth = np.array([[10.0, 10.0], [30.0, 30.0], [50.0, 50.0]])
    found = injection.match(truth, catalog, np.array([[30.0, 30.0]]))
    assert list(found) == [0, -1, -1]


def test_roc_area_counts_pairs_and_ties():
    assert injection.roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert injection.roc_auc([0.1], [0.9]) == 0.0
    assert injection.roc_auc([0.5], [0.5]) == 0.5
    assert np.isnan(injection.roc_auc([], [0.3]))


def _recovery(detections, found, sources):
    from astro_catalogs import Catalog
    xy = np.array(detections, dtype=float) + 1.0  # 1-based, as catalogs hold them
    catalog = Catalog({"X_IMAGE": xy[:, 0], "Y_IMAGE": xy[:, 1]}) if len(xy) else Catalog()
    return {"catalog": catalog, "sources": sources, "found": np.array(found),
            "originals": np.array([[90.0, 90.0]])}


def test_split_merged_and_spurious_detections_are_counted():
    galaxy = {"x": 20.0, "y": 20.0, "kind": "n1", "r_eff": 4.0}
    neighbour = {"x": 24.0, "y": 20.0, "kind": "star", "r_eff": 3.0}
    far = {"x": 60.0, "y": 60.0, "kind": "n4", "r_eff": 3.0}
    # the galaxy in two pieces; the neighbour recovered; the far galaxy missed; one detection
    # of the image's own object (left out) and one of nothing
    recovery = _recovery([[20.5, 20.0], [18.0, 22.5], [24.0, 20.2], [90.0, 90.0], [5.0, 70.0]],
                         [0, 2, -1], [galaxy, neighbour, far])
    assert injection.blend_counts(recovery) == (1, 0, 1, 4)
    # the galaxy swallowed by its neighbour's detection (between both, nearer the neighbour)
    merged = _recovery([[23.0, 20.0]], [-1, 0, -1], [galaxy, neighbour, far])
    assert injection.blend_counts(merged)[:2] == (0, 1)
