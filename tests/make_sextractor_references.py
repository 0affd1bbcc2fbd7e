"""Remake SExtractor's reference catalogs of test-data/ (needs Debian's source-extractor).

    python tests/make_sextractor_references.py

Dual-image mode: sep_image.fits (detection) and sep_measure.fits (measurement: 0.6 x the
same frame + 300 + Gaussian noise of sigma 20, seed 3, BAND = i), with the configuration
test-data/sextractor_dual.sex and the columns of test-data/sextractor_dual.param:
- sextractor_dual_detection.cat: SExtractor on the detection image alone;
- sextractor_dual_measure.cat: `source-extractor sep_image.fits,sep_measure.fits`.

CLASS_STAR and FWHM_IMAGE: the same configuration with the columns of
sextractor_class_star.param, SEEING_FWHM and PIXEL_SCALE given:
- sextractor_class_star_sep.cat: sep_image.fits, SEEING_FWHM 1.2, PIXEL_SCALE 0.3;
- sextractor_class_star_mosaic3.cat: mosaic3_z_ccd3.fits (a plain float32 copy: SExtractor
  reads no tile-compressed file), SEEING_FWHM 1.3, PIXEL_SCALE 0.262, SATUR_LEVEL 47200.

Weights and flags: sextractor_weights_mosaic3.cat, the Mosaic3 CCD with its inverse-variance
map (mosaic3_z_ccd3_oow.fits, WEIGHT_TYPE MAP_WEIGHT) and its DQ map
(mosaic3_z_ccd3_ood.fits, FLAG_IMAGE, FLAG_TYPE OR), the columns of
sextractor_weights.param, SEEING_FWHM 1.3, PIXEL_SCALE 0.262, GAIN 0.

Bad-pixel interpolation: saturated_star.fits (a star saturated at 3000 on a sky of 100 with
noise 1, a bleed trail 3 pixels wide and 41 long, seed 3) and saturated_star_weight.fits
(zero over the saturated core and the trail, 1 elsewhere), WEIGHT_TYPE MAP_WEIGHT,
DETECT_THRESH 5, the columns of sextractor_interp.param:
- sextractor_interp_all.cat: INTERP_TYPE ALL (SExtractor's default with a weight map);
- sextractor_interp_none.cat: INTERP_TYPE NONE.

Neighbours in FLUX_AUTO: sep_image.fits with sextractor_dual.sex and the columns of
sextractor_mask.param, MASK_TYPE CORRECT (SExtractor's default: other detections' pixels
replaced by their mirror image) and BLANK (set to zero):
- sextractor_mask_correct.cat, sextractor_mask_blank.cat.

Crowding (FLAGS bit 1), MAG_BEST and CLEAN's merge: sep_image.fits with sextractor_dual.sex,
MASK_TYPE CORRECT, the columns of sextractor_crowded.param:
- sextractor_crowded.cat: deblending on (DEBLEND_MINCONT 0.005);
- sextractor_clean.cat: deblending off (its segmentation map: sextractor_clean_seg.fits).
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


def sextractor(images, catalog, *options):
    subprocess.run(["source-extractor", images, "-c", "sextractor_dual.sex",
                    "-CATALOG_NAME", catalog, "-FILTER_NAME", os.path.join(SHARE, "default.conv"),
                    "-STARNNW_NAME", os.path.join(SHARE, "default.nnw"), *options],
                   cwd=DATA, check=True, capture_output=True)


def plain_copy(name, folder):
    """A plain copy of a tile-compressed image (its first HDU with data): float32, or int32
    for a flag map."""
    with fits.open(os.path.join(DATA, name)) as hdul:
        hdu = next(h for h in hdul if h.is_image and h.data is not None)
        path = os.path.join(folder, name.replace(".fits", "_plain.fits"))
        kind = np.int32 if hdu.data.dtype.kind in "iu" else np.float32
        fits.PrimaryHDU(hdu.data.astype(kind), hdu.header).writeto(path, overwrite=True)
    return path


def class_star_references():
    import tempfile
    params = ["-PARAMETERS_NAME", "sextractor_class_star.param"]
    sextractor("sep_image.fits", "sextractor_class_star_sep.cat", *params,
               "-SEEING_FWHM", "1.2", "-PIXEL_SCALE", "0.3")
    with tempfile.TemporaryDirectory() as folder:
        sextractor(plain_copy("mosaic3_z_ccd3.fits", folder), "sextractor_class_star_mosaic3.cat",
                   *params, "-SEEING_FWHM", "1.3", "-PIXEL_SCALE", "0.262",
                   "-SATUR_LEVEL", "47200")


def weight_references():
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        image, weight, flags = (plain_copy(name, folder) for name in (
            "mosaic3_z_ccd3.fits", "mosaic3_z_ccd3_oow.fits", "mosaic3_z_ccd3_ood.fits"))
        sextractor(image, "sextractor_weights_mosaic3.cat", "-PARAMETERS_NAME",
                   "sextractor_weights.param", "-SEEING_FWHM", "1.3", "-PIXEL_SCALE", "0.262",
                   "-SATUR_LEVEL", "47200", "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE",
                   weight, "-FLAG_IMAGE", flags, "-FLAG_TYPE", "OR")


def saturated_star():
    rng = np.random.default_rng(3)
    yy, xx = np.indices((160, 160))
    star = 2e5 * np.exp(-((xx - 80) ** 2 + (yy - 80) ** 2) / (2 * 3.0 ** 2))
    image = rng.normal(100.0, 1.0, (160, 160)) + star
    trail = (np.abs(xx - 80) <= 1) & (np.abs(yy - 80) <= 20)
    image[trail] = np.maximum(image[trail], 3000.0)
    bad = (image >= 3000.0) | trail
    note = ("COMMENT", "synthetic: tests/make_sextractor_references.py saturated_star()")
    fits.PrimaryHDU(np.minimum(image, 3000.0).astype(np.float32), fits.Header([note])).writeto(
        os.path.join(DATA, "saturated_star.fits"), overwrite=True)
    fits.PrimaryHDU(np.where(bad, 0.0, 1.0).astype(np.float32), fits.Header([note])).writeto(
        os.path.join(DATA, "saturated_star_weight.fits"), overwrite=True)


def interpolation_references():
    for kind in ("ALL", "NONE"):
        sextractor("saturated_star.fits", f"sextractor_interp_{kind.lower()}.cat",
                   "-PARAMETERS_NAME", "sextractor_interp.param", "-DETECT_THRESH", "5",
                   "-ANALYSIS_THRESH", "5", "-WEIGHT_TYPE", "MAP_WEIGHT", "-WEIGHT_IMAGE",
                   "saturated_star_weight.fits", "-INTERP_TYPE", kind)


def crowding_reference():
    sextractor("sep_image.fits", "sextractor_crowded.cat", "-PARAMETERS_NAME",
               "sextractor_crowded.param", "-MASK_TYPE", "CORRECT", "-DEBLEND_MINCONT", "0.005")
    sextractor("sep_image.fits", "sextractor_clean.cat", "-PARAMETERS_NAME",
               "sextractor_crowded.param", "-MASK_TYPE", "CORRECT", "-CHECKIMAGE_TYPE",
               "SEGMENTATION", "-CHECKIMAGE_NAME", "sextractor_clean_seg.fits")


def mask_type_references():
    for kind in ("correct", "blank"):
        sextractor("sep_image.fits", f"sextractor_mask_{kind}.cat", "-PARAMETERS_NAME",
                   "sextractor_mask.param", "-MASK_TYPE", kind.upper())


if __name__ == "__main__":
    measurement_image()
    sextractor("sep_image.fits", "sextractor_dual_detection.cat")
    sextractor("sep_image.fits,sep_measure.fits", "sextractor_dual_measure.cat")
    class_star_references()
    weight_references()
    saturated_star()
    interpolation_references()
    mask_type_references()
    crowding_reference()
