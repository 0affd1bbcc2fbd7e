"""Make the example pictures of the tools' help that are not plain tool outputs.

    python harness/help_pictures.py   (writes static/images/sky_compute_example.jpg and
                                        forced_photometry_example.png)

sky_compute: sep's test image, each object's inner Kron ellipse (red) and the middle of
the ring its local sky came from (cyan), drawn with the suite's own geometry and pictures.
forced_photometry: the colour-magnitude diagram of a synthetic cluster (red sequence
g - r = 1.9 - 0.05 r, bluer field galaxies) with the fitted red sequence.
"""

import os
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from astro_catalogs import read_catalog  # noqa: E402
from astro_ellipses import Ellipses, kron_ellipses  # noqa: E402
from astro_images import read_image  # noqa: E402
from astro_pictures import catalog_layer, render_overlay  # noqa: E402
import sky_compute  # noqa: E402,I100


def sky_compute_picture(out_path):
    data = os.path.join(REPO, "test-data")
    with tempfile.TemporaryDirectory() as tmp:
        sky_path = os.path.join(tmp, "sky.tabular")
        sky_compute.main(["--image", os.path.join(data, "sep_image.fits"), "--catalog",
                          os.path.join(data, "sep_hotcold.tabular"), "--mask",
                          os.path.join(data, "sep_hotcold_mask.fits"), "--output", sky_path,
                          "--ring-width", "10"])
        catalog = read_catalog(sky_path)
    catalog.pop("SOURCE")  # one colour per layer here, not one per run
    image = read_image(os.path.join(data, "sep_image.fits"))
    inner = kron_ellipses(catalog, 1.5)
    good = np.isfinite(catalog["SKY_RADIUS"])
    radius = np.where(good, catalog["SKY_RADIUS"], 0.0)
    rings = Ellipses(inner.x, inner.y, radius, radius * inner.ratio, inner.theta).take(good)
    layers = [catalog_layer(catalog, inner, "object ellipses"),
              catalog_layer(catalog.take(good), rings, "sky ring (SKY_RADIUS)", "#00c7ff")]
    png = out_path[:-4] + ".png"
    render_overlay(image.data, layers, png, stretch="zscale", width_px=480,
                   title="Local sky: object ellipses and the ring each sky came from")
    from PIL import Image
    Image.open(png).convert("RGB").save(out_path, quality=85)
    os.remove(png)


def synthetic_cluster(folder, seed=5):
    """g and r images of a synthetic cluster: red-sequence galaxies (g - r = 1.9 - 0.05 r),
    bluer field galaxies, Gaussian profiles on a sky of noise 0.2, MAGZP 25."""
    from astropy.io import fits
    rng = np.random.default_rng(seed)
    size = 400
    yy, xx = np.mgrid[0:size, 0:size]
    images = {"g": np.zeros((size, size)), "r": np.zeros((size, size))}
    kinds = [("red", 45), ("blue", 30)]
    for kind, count in kinds:
        mag_r = rng.uniform(16.5, 21.5, count)
        colour = -0.05 * mag_r + 1.9 + rng.normal(0, 0.03, count) if kind == "red" \
            else rng.uniform(0.2, 0.7, count)
        x, y = rng.uniform(20, size - 20, (2, count))
        sigma = rng.uniform(1.5, 3.0, count)
        for band, mag in (("r", mag_r), ("g", mag_r + colour)):
            flux = 10 ** (-0.4 * (mag - 25.0))
            for xi, yi, si, fi in zip(x, y, sigma, flux):
                window = (slice(max(int(yi - 6 * si), 0), int(yi + 6 * si) + 1),
                          slice(max(int(xi - 6 * si), 0), int(xi + 6 * si) + 1))
                images[band][window] += fi / (2 * np.pi * si ** 2) * np.exp(
                    -((xx[window] - xi) ** 2 + (yy[window] - yi) ** 2) / (2 * si ** 2))
    paths = {}
    for band, data in images.items():
        paths[band] = os.path.join(folder, f"{band}.fits")
        header = fits.Header([("BAND", band), ("MAGZP", 25.0)])
        fits.PrimaryHDU((data + rng.normal(0, 0.2, data.shape)).astype(np.float32),
                        header).writeto(paths[band], overwrite=True)
    return paths


def forced_photometry_picture(out_path):
    import forced_photometry
    import sep_extract
    with tempfile.TemporaryDirectory() as tmp:
        paths = synthetic_cluster(tmp)
        catalog = os.path.join(tmp, "r.tabular")
        sep_extract.main(["--image", paths["r"], "--catalog", catalog])
        forced_photometry.main(["--catalog", catalog, "--image", paths["g"], "--image",
                                paths["r"], "--apertures", "8", "--colour-aperture", "8",
                                "--cmd", out_path, "--red-sequence=17,21",
                                "--output", os.path.join(tmp, "colours.tabular")])


if __name__ == "__main__":
    sky_compute_picture(os.path.join(REPO, "static", "images", "sky_compute_example.jpg"))
    forced_photometry_picture(os.path.join(REPO, "static", "images",
                                           "forced_photometry_example.png"))
