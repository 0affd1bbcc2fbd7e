#!/usr/bin/env python
"""Regenerate the derived test images in test-data/ (deterministic; run from the repo root).

The real images (sep_image.fits, mosaic3_z_ccd3.fits) are copied unchanged from their
upstream projects (see test-data/README.md); everything here is derived from them or
synthetic.
"""

import os
import sys

import numpy as np
import tifffile
from astropy.io import fits

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test-data")
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
# CluSex README's Run1 ("hot": bright, large objects) and Run2 ("cold": faint, small ones)
HOT_ARGS = ["--thresh", "10", "--minarea", "10", "--deblend-nthresh", "64", "--deblend-cont",
            "0.01", "--back-size", "100", "--back-filtersize", "11", "--saturation", "50000"]
COLD_ARGS = ["--thresh", "1.2", "--minarea", "10", "--deblend-nthresh", "16", "--deblend-cont",
             "0.1", "--back-size", "10", "--back-filtersize", "2", "--saturation", "50000"]


def path(name):
    return os.path.join(HERE, name)


def legacy_like_header(nx, ny, ra, dec, pixscale=0.262, bands="grz"):
    """A WCS header laid out like the Legacy Surveys cutout service's FITS answer."""
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CRVAL2"] = ra, dec
    header["CRPIX1"], header["CRPIX2"] = (nx + 1) / 2.0, (ny + 1) / 2.0
    header["CD1_1"], header["CD1_2"] = -pixscale / 3600.0, 0.0
    header["CD2_1"], header["CD2_2"] = 0.0, pixscale / 3600.0
    header["BANDS"] = bands
    for index, band in enumerate(bands):
        header[f"BAND{index}"] = band
    return header


def main():
    sep_image = fits.getdata(path("sep_image.fits")).astype(np.float32)
    # The same real image as a float32 TIFF.
    tifffile.imwrite(path("sep_image.tiff"), sep_image)
    # A g,r,z cube (planes = 0.5x, 1x, 1.5x a 96x96 corner of the sep image), with the
    # cutout service's header layout.
    corner = sep_image[:96, :96]
    sky = np.median(corner)
    cube = np.stack([(corner - sky) * f + sky * f for f in (0.5, 1.0, 1.5)])
    header = legacy_like_header(96, 96, 150.0, 2.0)
    fits.PrimaryHDU(cube.astype(np.float32), header).writeto(path("cube_grz.fits"),
                                                             overwrite=True)
    # An RGB TIFF (refused without a chosen channel).
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[8:24, 8:24] = (200, 120, 40)
    tifffile.imwrite(path("rgb.tiff"), rgb, photometric="rgb")
    # A mask over the saturated star of the sep image (x 224..242, y 174..192, 1-based),
    # and one of the wrong shape.
    mask = np.zeros(sep_image.shape, dtype=np.uint8)
    mask[173:192, 223:242] = 1
    fits.PrimaryHDU(mask).writeto(path("mask_star.fits"), overwrite=True)
    fits.PrimaryHDU(np.zeros((100, 120), dtype=np.uint8)).writeto(
        path("mask_wrong_shape.fits"), overwrite=True)
    # An all-NaN image; a flat noise field with no sources.
    fits.PrimaryHDU(np.full((32, 32), np.nan, dtype=np.float32)).writeto(
        path("all_nan.fits"), overwrite=True)
    rng = np.random.default_rng(42)
    blank = (100.0 + rng.normal(0.0, 1.0, (64, 64))).astype(np.float32)
    fits.PrimaryHDU(blank).writeto(path("blank_sky.fits"), overwrite=True)
    # An HTML error page saved with a .fits name (what a failed download leaves).
    with open(path("error_page.fits"), "w") as handle:
        handle.write("<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title>"
                     "</head><body><h1>Internal Server Error</h1></body></html>\n")
    # Filter kernels: a 5x5 Gaussian (FWHM 3 px) and a malformed one.
    yy, xx = np.mgrid[-2:3, -2:3]
    gauss = np.exp(-(xx ** 2 + yy ** 2) / (2 * (3 / 2.3548) ** 2))
    np.savetxt(path("kernel_gauss5.txt"), gauss, fmt="%.5f")
    with open(path("kernel_ragged.txt"), "w") as handle:
        handle.write("1 2 1\n2 4\n1 2 1\n")
    # A real hot/cold pair of catalogs of the sep image, made by sep_extract.
    import sep_extract
    for name, args in (("sep_hot.tabular", HOT_ARGS), ("sep_cold.tabular", COLD_ARGS)):
        sep_extract.main(["--image", path("sep_image.fits"), "--catalog", path(name), *args])
    # Their hot/cold join, and its mask (saturation 50000, as SExtractor's default.sex).
    import catalog_join
    import mask_build
    catalog_join.main(["--catalog1", path("sep_hot.tabular"), "--catalog2",
                       path("sep_cold.tabular"), "--output", path("sep_hotcold.tabular")])
    mask_build.main(["--catalog", path("sep_hotcold.tabular"), "--image", path("sep_image.fits"),
                     "--output", path("sep_hotcold_mask.fits"), "--satur-level", "50000"])
    # ds9 region files: a valid one (every shape the suite reads) and a malformed one.
    with open(path("user_regions.reg"), "w") as handle:
        handle.write("# Region file format: DS9 version 4.1\nglobal color=green\nimage\n"
                     "box(20,230,12,8,0)\ncircle(240,20,6)\nellipse(128,240,10,4,30)\n"
                     "polygon(10,100,30,100,20,120)\npoint(5,5) # point=x\n")
    with open(path("bad_regions.reg"), "w") as handle:
        handle.write("# Region file format: DS9 version 4.1\nimage\ncircle(240,20,6)\n"
                     "annulus(100,100,5,10)\n")
    # A catalog with sky positions: the Mosaic3 CCD (TPV WCS), calibrated zero point.
    sep_extract.main(["--image", path("mosaic3_z_ccd3.fits"), "--catalog",
                      path("mosaic3_z.tabular"), "--deblend-cont", "1", "--zeropoint",
                      "26.2876"])
    # The cold catalog in CluSex's header-less 15-column layout (CLASS_STAR 0.5: sep has
    # no classifier).
    from astro_catalogs import CLUSEX_COLUMNS, read_catalog
    cold = read_catalog(path("sep_cold.tabular"))
    cold["CLASS_STAR"] = np.full(cold.nrows, 0.5)
    columns = [np.nan_to_num(cold[name], nan=0.0) for name in CLUSEX_COLUMNS]
    np.savetxt(path("sep_cold_clusex.cat"), np.column_stack(columns),
               fmt=["%d", "%.7f", "%.7f", "%d", "%d", "%.4f", "%.2f", "%.3f", "%d", "%.3f",
                    "%.3f", "%.2f", "%.2f", "%.2f", "%d"])


def desi_planes_file():
    """desi_r_planes.fits: an r-band cutout as desi_cutout writes it with --invvar and
    --maskbits, fetched from the local imitation of the service (sep's real pixels)."""
    import shutil
    import tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import desi_cutout
    import fake_legacy_service
    server, url = fake_legacy_service.start_server()
    os.environ["DESI_LEGACY_BASE_URL"] = url
    with tempfile.TemporaryDirectory() as folder:
        desi_cutout.main(["--ra", "150.1", "--dec", "2.2", "--size", "120", "--bands", "r",
                          "--fits", "--invvar", "--maskbits", "--output-dir", folder])
        shutil.copy(os.path.join(folder, "r.fits"), path("desi_r_planes.fits"))
    server.shutdown()
    # its catalog (weighted by INVVAR, flagged by MASKBITS) and that catalog's mask
    import mask_build
    import sep_extract
    planes = path("desi_r_planes.fits")
    # neighbours summed as they are (MASK_TYPE NONE): forced photometry in the same image
    # gives these FLUX_AUTO back
    sep_extract.main(["--image", planes, "--weight", planes, "--weight-hdu", "auto",
                      "--flag-image", planes, "--flag-hdu", "auto", "--mask-type", "none",
                      "--catalog", path("desi_r_planes.tabular")])
    mask_build.main(["--catalog", path("desi_r_planes.tabular"), "--image", planes,
                     "--output", path("desi_r_planes_mask.fits")])


if __name__ == "__main__":
    main()
    desi_planes_file()
