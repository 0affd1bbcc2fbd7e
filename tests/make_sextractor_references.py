"""Remake SExtractor's reference catalogs of test-data/ (needs Debian's source-extractor).

    python tests/make_sextractor_references.py

Dual-image mode: sep_image.fits (detection) and sep_measure.fits (measurement: 0.6 x the
same frame + 300 + Gaussian noise of sigma 20, seed 3, BAND = i), with the configuration
test-data/sextractor_dual.sex and the columns of test-data/sextractor_dual.param:
- sextractor_dual_detection.cat: SExtractor on the detection image alone;
- sextractor_dual_measure.cat: `source-extractor sep_image.fits,sep_measure.fits`.
"""

import os
import subprocess

import numpy as np
from astropy.io import fits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "test-data")
SHARE = "/usr/share/source-extractor"


def measurement_image():
    data = fits.getdata(os.path.join(DATA, "sep_image.fits")).astype(np.float32)
    noise = np.random.default_rng(3).normal(0.0, 20.0, data.shape).astype(np.float32)
    header = fits.Header([("BAND", "i", "band of this measurement image"),
                          ("COMMENT", "0.6 x sep_image.fits + 300 + N(0, 20), seed 3")])
    fits.PrimaryHDU(0.6 * data + 300.0 + noise, header).writeto(
        os.path.join(DATA, "sep_measure.fits"), overwrite=True)


def sextractor(images, catalog):
    subprocess.run(["source-extractor", images, "-c", "sextractor_dual.sex",
                    "-CATALOG_NAME", catalog, "-FILTER_NAME", os.path.join(SHARE, "default.conv"),
                    "-STARNNW_NAME", os.path.join(SHARE, "default.nnw")],
                   cwd=DATA, check=True, capture_output=True)


if __name__ == "__main__":
    measurement_image()
    sextractor("sep_image.fits", "sextractor_dual_detection.cat")
    sextractor("sep_image.fits,sep_measure.fits", "sextractor_dual_measure.cat")
