"""Make the example pictures of the tools' help that are not plain tool outputs.

    python harness/help_pictures.py     (writes static/images/sky_compute_example.jpg)

sky_compute: sep's test image, each object's inner Kron ellipse (red) and the middle of
the ring its local sky came from (cyan), drawn with the suite's own geometry and pictures.
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


if __name__ == "__main__":
    sky_compute_picture(os.path.join(REPO, "static", "images", "sky_compute_example.jpg"))
