"""catalog_join and catalog_to_regions: hand-made catalogs whose answer is known object by
object, a real hot/cold pair, CluSex's bugs not copied, and bad inputs."""

import numpy as np
import pytest

import catalog_join
import catalog_to_regions
import sep_extract
from astro_catalogs import Catalog, CLUSEX_COLUMNS, read_catalog, write_catalog
from conftest import data_path

SEEING_PX = 1.5 / 0.262


def make_catalog(rows):
    """A CluSex-column catalog from dicts (defaults fill the other columns)."""
    defaults = {"ALPHA_J2000": 150.0, "DELTA_J2000": 2.0, "MAG_BEST": 20.0,
                "KRON_RADIUS": 1.0, "FLUX_RADIUS": 2.0, "ISOAREA_IMAGE": 30, "A_IMAGE": 2.0,
                "ELLIPTICITY": 0.0, "THETA_IMAGE": 0.0, "BACKGROUND": 100.0,
                "CLASS_STAR": 0.5, "FLAGS": 0}
    catalog = Catalog()
    for name in CLUSEX_COLUMNS:
        if name == "NUMBER":
            values = [row.get("NUMBER", i + 1) for i, row in enumerate(rows)]
        else:
            values = [row.get(name, defaults.get(name)) for row in rows]
        catalog[name] = np.array(values, dtype=np.int64 if name in ("NUMBER", "FLAGS",
                                                                    "ISOAREA_IMAGE") else float)
    return catalog


def write(tmp_path, name, rows):
    path = tmp_path / name
    write_catalog(str(path), make_catalog(rows))
    return path


def join(run_script, tmp_path, cat1, cat2, *extra):
    out = tmp_path / "joined.tabular"
    result = run_script(catalog_join, ["--catalog1", cat1, "--catalog2", cat2, "--output",
                                       out, "--regions", tmp_path / "joined.reg", *extra])
    result.joined = read_catalog(str(out)) if result.status == 0 else None
    return result


def at(x, y, **columns):
    return {"XPEAK_IMAGE": x, "YPEAK_IMAGE": y, **columns}


def test_point_inside_a_rotated_ellipse_near_its_edge(run_script, tmp_path):
    # catalog-1 ellipse: centre (100, 100), R = 1 x 2 x 10 = 20, b = 10, theta 30 deg CCW
    hot = write(tmp_path, "hot.tab", [at(100, 100, KRON_RADIUS=2.0, A_IMAGE=10.0,
                                         ELLIPTICITY=0.5, THETA_IMAGE=30.0)])
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    points = {  # distance along the major axis (u) and the minor axis (v)
        "major 19.9 in": (19.9, 0), "major 20.1 out": (20.1, 0),
        "minor 9.9 in": (0, 9.9), "minor 10.1 out": (0, 10.1),
        "major -19.9 in": (-19.9, 0), "diagonal out": (14.2, 7.2),
    }
    rows = [at(100 + u * c - v * s, 100 + u * s + v * c) for u, v in points.values()]
    cold = write(tmp_path, "cold.tab", rows)
    result = join(run_script, tmp_path, hot, cold, "--mode", "add", "--join-scale", "1")
    assert result.status == 0, result.err
    added = result.joined.take(result.joined["SOURCE"] == 2)
    expected_out = [i for i, name in enumerate(points) if name.endswith("out")]
    np.testing.assert_allclose(added["XPEAK_IMAGE"], [rows[i]["XPEAK_IMAGE"]
                                                      for i in expected_out], atol=1e-3)
    assert "rejected from catalog 2: 3" in result.out


def test_point_on_the_edge_is_outside_and_theta_is_counter_clockwise(run_script, tmp_path):
    # R = 10 along +y (theta 90): (100, 110) lies on the edge (strict test: outside),
    # (100, 109.9) inside; (109, 100) is outside because b = 5
    hot = write(tmp_path, "hot.tab", [at(100, 100, KRON_RADIUS=1.0, A_IMAGE=10.0,
                                         ELLIPTICITY=0.5, THETA_IMAGE=90.0)])
    cold = write(tmp_path, "cold.tab", [at(100, 110), at(100, 109.9), at(109, 100)])
    result = join(run_script, tmp_path, hot, cold, "--mode", "add", "--join-scale", "1")
    added = result.joined.take(result.joined["SOURCE"] == 2)
    assert sorted(zip(added["XPEAK_IMAGE"], added["YPEAK_IMAGE"])) == [(100, 110), (109, 100)]


def test_renumbering_after_catalog_1(run_script, tmp_path):
    hot = write(tmp_path, "hot.tab", [at(10, 10), at(50, 50), at(90, 90)])
    cold = write(tmp_path, "cold.tab", [at(200, 200), at(10.5, 10), at(300, 300)])
    result = join(run_script, tmp_path, hot, cold, "--mode", "add")
    np.testing.assert_array_equal(result.joined["NUMBER"], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(result.joined["SOURCE"], [1, 1, 1, 2, 2])
    np.testing.assert_array_equal(result.joined["XPEAK_IMAGE"], [10, 50, 90, 200, 300])


def test_renumbering_does_not_collide_with_sparse_numbers(run_script, tmp_path):
    # CluSex numbers added rows from the row count + 1 (here 3), colliding with NUMBER 7
    hot = write(tmp_path, "hot.tab", [at(10, 10, NUMBER=2), at(50, 50, NUMBER=7)])
    cold = write(tmp_path, "cold.tab", [at(200, 200)])
    result = join(run_script, tmp_path, hot, cold, "--mode", "add")
    np.testing.assert_array_equal(result.joined["NUMBER"], [2, 7, 8])


def size_correction_case(run_script, tmp_path, hot_kron, hot_a, cold_kron, cold_a,
                         cold_shape=None):
    hot = write(tmp_path, "hot.tab", [at(100, 100, KRON_RADIUS=hot_kron, A_IMAGE=hot_a,
                                         ELLIPTICITY=0.2, THETA_IMAGE=10.0, FLUX_RADIUS=9.0,
                                         ISOAREA_IMAGE=400)])
    cold_row = at(101, 102, KRON_RADIUS=cold_kron, A_IMAGE=cold_a, **(cold_shape or {}))
    cold = write(tmp_path, "cold.tab", [cold_row])
    result = join(run_script, tmp_path, hot, cold)
    assert result.status == 0, result.err
    return result.joined


def test_size_replaced_by_the_other_runs_size_and_shape(run_script, tmp_path):
    # K x A = 21 against 10.5: 21 > 1.5 x 10.5 but <= 1.5 x 1.5 x 10.5 -> the cold size
    joined = size_correction_case(run_script, tmp_path, 3.0, 7.0, 3.0, 3.5,
                                  {"ELLIPTICITY": 0.6, "THETA_IMAGE": -40.0, "FLUX_RADIUS": 3.0,
                                   "ISOAREA_IMAGE": 80})
    hot = joined.take(joined["SOURCE"] == 1)
    assert hot["KRON_RADIUS"][0] * hot["A_IMAGE"][0] == pytest.approx(10.5)
    # the shape comes with the size (CluSex keeps the hot E and THETA: not copied)
    assert hot["ELLIPTICITY"][0] == pytest.approx(0.6)
    assert hot["THETA_IMAGE"][0] == pytest.approx(-40.0)
    assert hot["FLUX_RADIUS"][0] == pytest.approx(3.0) and hot["ISOAREA_IMAGE"][0] == 80
    # the cold object lies inside the corrected hot ellipse: not added
    assert joined.nrows == 1


def test_size_multiplied_by_scale_cor(run_script, tmp_path):
    # K x A = 30 > 1.5 x 1.5 x 10.5 = 23.6: the cold size times ScaleCor 1.5 = 15.75
    joined = size_correction_case(run_script, tmp_path, 3.0, 10.0, 3.0, 3.5)
    assert joined["KRON_RADIUS"][0] == pytest.approx(4.5)
    assert joined["KRON_RADIUS"][0] * joined["A_IMAGE"][0] == pytest.approx(15.75)


def test_size_kept_within_tolerance(run_script, tmp_path):
    joined = size_correction_case(run_script, tmp_path, 3.0, 4.0, 3.0, 3.5)  # 12 vs 10.5
    assert joined["KRON_RADIUS"][0] == pytest.approx(3.0)
    assert joined["A_IMAGE"][0] == pytest.approx(4.0)


def test_unmatched_sizes_reduced_and_floored_at_the_seeing(run_script, tmp_path):
    hot = write(tmp_path, "hot.tab", [at(100, 100, KRON_RADIUS=5.0, A_IMAGE=4.0),
                                      at(300, 300, KRON_RADIUS=10.0, A_IMAGE=10.0)])
    cold = write(tmp_path, "cold.tab", [at(600, 600, KRON_RADIUS=3.0, A_IMAGE=1.0)])
    result = join(run_script, tmp_path, hot, cold, "--seeing-fwhm", "1.5", "--pixel-scale",
                  "0.262")
    kron, a = result.joined["KRON_RADIUS"], result.joined["A_IMAGE"]
    # 5 x 0.2 = 1 -> K x A = 4 < 5.725 px (the seeing in pixels, not CluSex's 1.5 px)
    assert kron[0] * a[0] == pytest.approx(SEEING_PX, rel=1e-3)
    assert kron[1] == pytest.approx(2.0)             # 10 x 0.2: K x A = 20, no floor
    assert kron[2] * a[2] == pytest.approx(SEEING_PX, rel=1e-3)
    assert "reduced (no counterpart): 3" in result.out


def test_kron_radius_is_not_rounded(run_script, tmp_path):
    joined = size_correction_case(run_script, tmp_path, 3.14159, 4.0, 3.0, 3.5)
    assert joined["KRON_RADIUS"][0] == pytest.approx(3.142, abs=1e-3)


@pytest.mark.parametrize("rows1, rows2, joined_rows", [
    ([at(10, 10)], [at(50, 50)], 2),                    # one-row catalogs
    ([at(10, 10), at(50, 50)], [], 2),                  # empty catalog 2
    ([], [at(10, 10)], 1),                              # empty catalog 1
    ([at(10, 10), at(50, 50)], [at(10, 10), at(50, 50)], 2),  # identical catalogs
])
def test_small_empty_and_identical_catalogs(run_script, tmp_path, rows1, rows2, joined_rows):
    result = join(run_script, tmp_path, write(tmp_path, "1.tab", rows1),
                  write(tmp_path, "2.tab", rows2))
    assert result.status == 0, result.err
    assert result.joined.nrows == joined_rows
    np.testing.assert_array_equal(result.joined["NUMBER"], np.arange(1, joined_rows + 1))


def test_add_unmatched_keeps_each_rows_own_dec(run_script, tmp_path):
    # CluSex's joincat -i writes the Dec of the wrong row: each added row keeps its own
    hot = write(tmp_path, "hot.tab", [at(10, 10, DELTA_J2000=1.0), at(50, 50, DELTA_J2000=1.1)])
    cold = write(tmp_path, "cold.tab", [at(12, 10, DELTA_J2000=2.0), at(80, 80, DELTA_J2000=2.1),
                                        at(90, 90, DELTA_J2000=2.2)])
    result = join(run_script, tmp_path, hot, cold, "--mode", "add-unmatched",
                  "--match-radius", "5")
    np.testing.assert_allclose(result.joined["DELTA_J2000"], [1.0, 1.1, 2.1, 2.2])
    np.testing.assert_array_equal(result.joined["XPEAK_IMAGE"], [10, 50, 80, 90])


def test_add_unmatched_size_options(run_script, tmp_path):
    hot = write(tmp_path, "hot.tab", [at(10, 10)])
    cold = write(tmp_path, "cold.tab", [at(80, 80, KRON_RADIUS=4.0, A_IMAGE=2.0),
                                        at(90, 90, KRON_RADIUS=40.0, A_IMAGE=2.0)])
    result = join(run_script, tmp_path, hot, cold, "--mode", "add-unmatched",
                  "--added-kron-factor", "0.1", "--added-min-size", "5")
    kron = result.joined["KRON_RADIUS"][1:]
    np.testing.assert_allclose(kron, [2.5, 4.0])  # 0.4 x 2 < 5 -> 5/2; 4 x 2 = 8 kept


def test_third_catalog_gets_the_next_source(run_script, tmp_path):
    hot = write(tmp_path, "hot.tab", [at(10, 10)])
    cold = write(tmp_path, "cold.tab", [at(80, 80)])
    first = join(run_script, tmp_path, hot, cold, "--mode", "add")
    joined_path = tmp_path / "first.tabular"
    write_catalog(str(joined_path), first.joined)
    third = write(tmp_path, "third.tab", [at(150, 150), at(10, 11)])
    result = join(run_script, tmp_path, joined_path, third, "--mode", "add-unmatched")
    np.testing.assert_array_equal(result.joined["SOURCE"], [1, 2, 3])
    np.testing.assert_array_equal(result.joined["NUMBER"], [1, 2, 3])


def test_region_file_text(run_script, tmp_path):
    hot = write(tmp_path, "hot.tab", [at(10, 20, KRON_RADIUS=2.0, A_IMAGE=3.0, ELLIPTICITY=0.5,
                                         THETA_IMAGE=30.0, FLAGS=4)])
    cold = write(tmp_path, "cold.tab", [at(100, 200, KRON_RADIUS=1.0, A_IMAGE=2.0)])
    join(run_script, tmp_path, hot, cold, "--mode", "add", "--scale", "1.5", "--offset", "1")
    lines = (tmp_path / "joined.reg").read_text().splitlines()
    assert lines[0] == "# Region file format: DS9 version 4.1"
    assert lines[2] == "image"
    assert lines[3] == "ellipse(10,20,10.0000,5.0000,30.000) # color=red text={1}"
    assert lines[4] == "ellipse(100,200,4.0000,4.0000,0.000) # color=blue text={2}"
    assert lines[5] == "point(10,20) # point=boxcircle color=red"


def test_real_hot_cold_pair(run_script, tmp_path):
    """sep_extract twice on sep's test image (CluSex README's Run1/Run2), then the join."""
    common = ["--image", data_path("sep_image.fits"), "--saturation", "50000"]
    sep_extract.main(common + ["--catalog", str(tmp_path / "hot.tab"), "--thresh", "10",
                               "--minarea", "10", "--deblend-nthresh", "64", "--deblend-cont",
                               "0.01", "--back-size", "100", "--back-filtersize", "11"])
    sep_extract.main(common + ["--catalog", str(tmp_path / "cold.tab"), "--thresh", "1.2",
                               "--minarea", "10", "--deblend-nthresh", "16", "--deblend-cont",
                               "0.1", "--back-size", "10", "--back-filtersize", "2"])
    result = join(run_script, tmp_path, tmp_path / "hot.tab", tmp_path / "cold.tab")
    assert result.status == 0, result.err
    for line in ("catalog 1: 10", "catalog 2: 62", "added from catalog 2: 52",
                 "rejected from catalog 2: 10", "joined: 62"):
        assert line in result.out
    joined = result.joined
    columns = list(sep_extract.CATALOG_COLUMNS)
    assert list(joined)[:len(columns)] == columns and "SOURCE" in joined
    # the saturated star (peak 233, 183) comes from the hot run, with its FLAGS bit 4
    star = (joined["XPEAK_IMAGE"] == 233) & (joined["YPEAK_IMAGE"] == 183)
    assert star.sum() == 1 and joined["SOURCE"][star][0] == 1 and joined["FLAGS"][star][0] & 4
    # no cold object was added inside a hot ellipse
    hot = joined.take(joined["SOURCE"] == 1)
    cold = joined.take(joined["SOURCE"] == 2)
    covered = catalog_join.covered_by_ellipses(catalog_join.peaks(cold), hot, 1.5)
    assert not covered.any()


def test_clusex_headerless_catalogs(run_script, tmp_path):
    rows1 = "1 150.0 2.0 10 10 20.0 3.5 2.0 30 2.0 0.1 45.0 100.0 0.9 0\n"
    rows2 = ("1 150.1 2.1 11 10 21.0 3.5 2.0 30 2.0 0.1 45.0 100.0 0.9 0\n"
             "2 150.2 2.2 90 90 21.0 3.5 2.0 30 2.0 0.1 45.0 100.0 0.9 4\n")
    (tmp_path / "a.cat").write_text(rows1)
    (tmp_path / "b.cat").write_text(rows2)
    result = join(run_script, tmp_path, tmp_path / "a.cat", tmp_path / "b.cat", "--mode", "add")
    assert result.status == 0, result.err
    np.testing.assert_array_equal(result.joined["XPEAK_IMAGE"], [10, 90])
    assert result.joined["FLAGS"][1] == 4 and result.joined["CLASS_STAR"][1] == 0.9


def test_sextractor_ascii_head_catalog(run_script, tmp_path):
    head = ["#   1 NUMBER", "#   2 XPEAK_IMAGE", "#   3 YPEAK_IMAGE", "#   4 KRON_RADIUS",
            "#   5 A_IMAGE", "#   6 B_IMAGE", "#   7 THETA_IMAGE", "#   8 FLUX_RADIUS",
            "#  11 FLAGS"]
    body = ["1 10 10 3.5 2.0 1.0 45.0 1.0 2.0 3.0 0", "2 90 90 3.5 2.0 1.0 45.0 1.0 2.0 3.0 0"]
    path = tmp_path / "sex.cat"
    path.write_text("\n".join(head + body) + "\n")
    catalog = read_catalog(str(path))
    assert list(catalog)[7:10] == ["FLUX_RADIUS", "FLUX_RADIUS_2", "FLUX_RADIUS_3"]
    cold = write(tmp_path, "cold.tab", [at(10.5, 10), at(200, 200)])
    result = join(run_script, tmp_path, path, cold, "--mode", "add")
    assert result.status == 0, result.err
    assert result.joined.nrows == 3
    np.testing.assert_allclose(result.joined["ELLIPTICITY"][:2], [0.5, 0.5])


@pytest.mark.parametrize("content, message", [
    (None, "Error: catalog 1 lacks the column(s) XPEAK_IMAGE, YPEAK_IMAGE, THETA_IMAGE"),
    ("", "Error: catalog 1 is empty: no header and no rows"),
    ("#NUMBER\tXPEAK_IMAGE\tYPEAK_IMAGE\tKRON_RADIUS\tA_IMAGE\tTHETA_IMAGE\tELLIPTICITY\n"
     "1\t10\t10\tabc\t2\t0\t0.1\n",
     "Error: catalog 1: line 2 has a non-numeric value 'abc'"),
    ("#NUMBER\tXPEAK_IMAGE\tYPEAK_IMAGE\tKRON_RADIUS\tA_IMAGE\tTHETA_IMAGE\n1\t10\t10\t3\t2\t0\n",
     "Error: catalog 1 lacks the column(s) ELLIPTICITY (or B_IMAGE)"),
    ("#NUMBER\tXPEAK_IMAGE\tYPEAK_IMAGE\n1\t10\n",
     "Error: catalog 1: line 2 has 2 values but the header names 3 columns"),
    ("1 2 3 4\n", "Error: catalog 1 has no header line and 4 columns"),
])
def test_bad_catalogs(run_script, tmp_path, content, message):
    if content is None:  # the real SExtractor catalog of sep's image lacks CluSex's columns
        path = data_path("sep_image.cat")
    else:
        path = tmp_path / "bad.tab"
        path.write_text(content)
    result = join(run_script, tmp_path, path, write(tmp_path, "ok.tab", [at(1, 1)]))
    assert result.status == 2
    assert result.err.strip().startswith(message), result.err
    assert len(result.err.strip().splitlines()) == 1


def test_bad_parameters(run_script, tmp_path):
    ok = write(tmp_path, "ok.tab", [at(1, 1)])
    result = join(run_script, tmp_path, ok, ok, "--join-scale", "0")
    assert result.status == 2 and "--join-scale must be positive" in result.err


def test_catalog_to_regions_image_and_fk5(run_script, tmp_path):
    catalog = write(tmp_path, "c.tab", [at(10, 20, KRON_RADIUS=2.0, A_IMAGE=3.0,
                                           ELLIPTICITY=0.5, THETA_IMAGE=30.0,
                                           ALPHA_J2000=150.5, DELTA_J2000=2.25)])
    out = tmp_path / "r.reg"
    result = run_script(catalog_to_regions, ["--catalog", catalog, "--output", out,
                                             "--scale", "1", "--offset", "0"])
    assert result.status == 0
    assert out.read_text().splitlines()[2:] == [
        "image", "ellipse(10,20,6.0000,3.0000,30.000) # color=red text={1}"]
    result = run_script(catalog_to_regions, ["--catalog", catalog, "--output", out,
                                             "--coords", "fk5", "--pixel-scale", "0.5"])
    assert out.read_text().splitlines()[2:] == [
        "fk5", 'ellipse(150.5000000,2.2500000,4.5000",2.2500",30.000) # color=red text={1}']


def test_catalog_to_regions_without_wcs(run_script, tmp_path):
    catalog = write(tmp_path, "c.tab", [at(10, 20, ALPHA_J2000=np.nan, DELTA_J2000=np.nan)])
    result = run_script(catalog_to_regions, ["--catalog", catalog, "--output",
                                             tmp_path / "r.reg", "--coords", "fk5"])
    assert result.status == 2 and "has no sky positions" in result.err


def test_vectorised_join_equals_all_pairs():
    """The KD-tree join gives exactly what testing every pair gives."""
    rng = np.random.default_rng(3)
    hot = make_catalog([at(x, y, KRON_RADIUS=k, A_IMAGE=a, ELLIPTICITY=e, THETA_IMAGE=t)
                        for x, y, k, a, e, t in zip(rng.uniform(0, 500, 300),
                                                    rng.uniform(0, 500, 300),
                                                    rng.uniform(1, 4, 300),
                                                    rng.uniform(0.5, 6, 300),
                                                    rng.uniform(0, 0.9, 300),
                                                    rng.uniform(-90, 90, 300))])
    points = rng.uniform(0, 500, (2000, 2))
    fast = catalog_join.covered_by_ellipses(points, hot, 1.5)
    from astro_ellipses import inside_ellipses, kron_ellipses
    e = kron_ellipses(hot, 1.5)
    slow = np.array([inside_ellipses(px, py, e.x, e.y, e.major, e.minor, e.theta).any()
                     for px, py in points])
    np.testing.assert_array_equal(fast, slow)
    assert 100 < slow.sum() < 1900


def test_nearest_counterpart_ties_go_to_the_first():
    # two catalog-2 peaks at the same distance (2 px) from the catalog-1 peak: CluSex's
    # argmin takes the first; so does the KD-tree match
    points = np.array([[10.0, 10.0]])
    others = np.array([[50.0, 50.0], [12.0, 10.0], [8.0, 10.0], [10.0, 13.5]])
    assert catalog_join.nearest_within(points, others, 3.0)[0] == 1
    assert catalog_join.nearest_within(points, others[::-1], 3.0)[0] == 1  # [8,10] first now
    assert catalog_join.nearest_within(points, others[:1], 3.0)[0] == -1
