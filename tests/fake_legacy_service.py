#!/usr/bin/env python
"""A local stand-in for the Legacy Surveys cutout service (fits-cutout, jpeg-cutout), for
tests without internet. It answers like the real service (see the reference notes):

- FITS: one primary HDU, a float32 cube (nbands, height, width) in nanomaggies with the
  real header layout (SURVEY, VERSION, IMAGETYP, BANDS, BAND0.., RA---TAN/DEC--TAN, CD).
  The pixels are sep's real NTT image, sky-subtracted and scaled (band g 0.5x, r 1x,
  i 1.2x, z 1.5x), tiled to the asked size.
  With `invvar` in the query (and pixscale below 0.524, as the service), a second HDU
  (IMAGETYP INVVAR) holds the inverse-variance cube: 1 / sigma^2 of each band's noise,
  zero in a dead column (x = 20) and over a bleed trail of the brightest object; with
  `maskbits`, a last HDU (IMAGETYP MASKBITS, int32, 2-D) flags that object's core and
  trail as SATUR_R (bit 3) and a disc around it as BRIGHT (bit 1). As the service, the
  extra HDUs repeat the image's header.
- JPEG: an RGB composite of the same pixels.
Failure modes, chosen by the position:
- Dec < -80: outside the footprint (FITS: HTTP 500; JPEG: 200 with a blank image);
- an unknown layer: HTTP 200 with a short HTML body;
- no ra or dec: HTTP 400;
- 300 <= RA < 301: the first request for a URL gets HTTP 503, the next succeeds;
- 301 <= RA < 302: the answer is slow (FAKE_LEGACY_DELAY seconds, default 5);
- 302 <= RA < 303: the connection drops after half the promised body (IncompleteRead);
- 303 <= RA < 304: a garbage status line (BadStatusLine);
- 304 <= RA < 305: the body drips one byte every FAKE_LEGACY_DRIP seconds (default 0.2)
  and would take minutes to finish;
- 305 <= RA < 306: HTTP 200 with an empty body.

Run alone: python tests/fake_legacy_service.py [--port 0]  (prints the base URL).
"""

import argparse
import io
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = {"ls-dr10": "griz", "ls-dr10-south": "griz", "ls-dr9": "grz", "ls-dr9-north": "grz",
          "ls-dr9-south": "grz"}
BAND_FACTORS = {"g": 0.5, "r": 1.0, "i": 1.2, "z": 1.5}
_SKY = None
_seen = set()
_lock = threading.Lock()


def sky_pixels():
    """sep's real image, sky-subtracted, in about nanomaggies."""
    global _SKY
    if _SKY is None:
        from astropy.io import fits
        data = fits.getdata(os.path.join(HERE, "..", "test-data", "sep_image.fits"))
        _SKY = ((data.astype(np.float32) - np.median(data)) / 200.0).astype(np.float32)
    return _SKY


def cutout_pixels(width, height):
    sky = sky_pixels()
    reps = (height // sky.shape[0] + 1, width // sky.shape[1] + 1)
    return np.tile(sky, reps)[:height, :width]


NOISE = 0.327       # the sky noise of the base pixels: sep's image's RMS 65.5, / 200
DEAD_COLUMN = 20


def bright_object(base):
    """The brightest pixel (y, x) and the pixels of its core and of a bleed trail up and
    down its column (where a CCD would saturate)."""
    y, x = np.unravel_index(np.argmax(base), base.shape)
    yy, xx = np.indices(base.shape)
    core = (yy - y) ** 2 + (xx - x) ** 2 <= 4
    trail = (np.abs(xx - x) <= 1) & (np.abs(yy - y) <= 12)
    disc = (yy - y) ** 2 + (xx - x) ** 2 <= 20 ** 2
    return core | trail, disc


def invvar_planes(base, bands):
    saturated, _ = bright_object(base)
    planes = []
    for band in bands:
        plane = np.full(base.shape, 1.0 / (NOISE * BAND_FACTORS[band]) ** 2, np.float32)
        plane[:, DEAD_COLUMN] = 0.0
        plane[saturated] = 0.0
        planes.append(plane)
    return np.stack(planes)


def maskbits_plane(base):
    saturated, disc = bright_object(base)
    bits = np.zeros(base.shape, np.int32)
    bits[disc] |= 1 << 1        # BRIGHT
    bits[saturated] |= 1 << 3   # SATUR_R
    return bits


def fits_answer(ra, dec, width, height, pixscale, bands, invvar=False, maskbits=False):
    from astropy.io import fits
    base = cutout_pixels(width, height)
    cube = np.stack([base * BAND_FACTORS[b] for b in bands]).astype(np.float32)
    header = fits.Header()
    header["SURVEY"] = "LegacySurvey"
    header["VERSION"] = "DR10"
    header["IMAGETYP"] = "image"
    header["BANDS"] = bands
    for index, band in enumerate(bands):
        header[f"BAND{index}"] = band
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CRVAL2"] = ra, dec
    header["CRPIX1"], header["CRPIX2"] = (width + 1) / 2.0, (height + 1) / 2.0
    header["CD1_1"], header["CD1_2"] = -pixscale / 3600.0, 0.0
    header["CD2_1"], header["CD2_2"] = 0.0, pixscale / 3600.0
    hdus = [fits.PrimaryHDU(cube, header)]
    planes = pixscale < 0.524  # the service has no planes for scaled-down images
    if invvar and planes:
        hdus.append(fits.ImageHDU(invvar_planes(base, bands), typed(header, "INVVAR")))
    if maskbits and planes:
        hdus.append(fits.ImageHDU(maskbits_plane(base), typed(header, "MASKBITS")))
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


def typed(header, kind):
    header = header.copy()
    header["IMAGETYP"] = kind
    return header


def jpeg_answer(width, height, blank=False):
    from PIL import Image
    if blank:
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
    else:
        base = cutout_pixels(width, height)[::-1]
        scaled = np.clip(np.arcsinh(base * 2) * 60 + 40, 0, 255)
        rgb = np.stack([scaled * 0.9, scaled, scaled * 0.8], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeLegacySurvey/1.0"

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def broken_answer(self, ra):
        """The network's failure modes (see the module notes)."""
        if 303 <= ra < 304:
            self.wfile.write(b"HTTP/1.1 OK-ish garbage\r\n\r\n")
            return None
        if 305 <= ra < 306:
            return self.reply(200, b"", "application/fits")
        body = fits_answer(ra, 0.0, 64, 64, 0.262, "g")
        self.send_response(200)
        self.send_header("Content-Type", "application/fits")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if 302 <= ra < 303:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        drip = float(os.environ.get("FAKE_LEGACY_DRIP", "0.2"))
        try:
            for index in range(min(len(body), 600)):  # bounded: at most 600 bytes
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
                time.sleep(drip)
        except OSError:  # the client gave up, as it should
            pass
        return None

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urllib.parse.urlparse(self.path)
        kind = url.path.rstrip("/").rsplit("/", 1)[-1]
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if kind not in ("fits-cutout", "jpeg-cutout"):
            return self.reply(404, b"<html>Not found</html>", "text/html")
        if "ra" not in query or "dec" not in query:
            return self.reply(400, b"<html>ra and dec are required</html>", "text/html")
        ra, dec = float(query["ra"]), float(query["dec"])
        layer = query.get("layer", "ls-dr9")
        if layer not in LAYERS:
            return self.reply(200, f"<html>No such layer: {layer}</html>".encode(), "text/html")
        if 301 <= ra < 302:
            time.sleep(float(os.environ.get("FAKE_LEGACY_DELAY", "5")))
        if 302 <= ra < 306:
            return self.broken_answer(ra)
        if 300 <= ra < 301:
            with _lock:
                first = self.path not in _seen
                _seen.add(self.path)
            if first:
                return self.reply(503, b"<html>Service Unavailable</html>", "text/html")
        size = int(query.get("size", 256))
        width = min(int(query.get("width", size)), 3000)
        height = min(int(query.get("height", size)), 3000)
        outside = dec < -80
        if kind == "jpeg-cutout":
            return self.reply(200, jpeg_answer(width, height, blank=outside), "image/jpeg")
        if outside:
            return self.reply(500, b"<html>Internal Server Error</html>", "text/html")
        bands = "".join(b for b in query.get("bands", LAYERS[layer]) if b in LAYERS[layer]) \
            or LAYERS[layer]  # an unknown letter falls back to the default, as the service
        body = fits_answer(ra, dec, width, height, float(query.get("pixscale", 0.262)), bands,
                           "invvar" in query, "maskbits" in query)
        return self.reply(200, body, "application/fits")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that gave up (the drip and cut-off modes) is not an error here."""
        import sys
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start_server(port=0):
    """Start the fake service in a thread; returns (server, base URL)."""
    server = QuietServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/viewer"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = QuietServer(("127.0.0.1", args.port), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}/viewer", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
