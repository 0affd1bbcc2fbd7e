"""A person's view of the suite in Galaxy's web UI, checked with headless Chromium.

Opens the tool form of sep_extract, the list of published workflows and the suite's welcome
page in Debian's
Chromium (installed with apt-get when missing), asserts that the form's parameters and
the workflow names are on the rendered page, and keeps screenshots in test-output/.
"""

import os
import shutil
import subprocess
import tempfile

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=30000", "--window-size=1400,1800",
]
# texts a page must not show: the mask threshold appears only once a mask image is chosen
ABSENT = {"tool_form": ["Mask threshold"]}
PAGES = {
    "tool_form": ("/?tool_id=sep_extract",
                  ["Extract sources", "Sky image", "Detection threshold", "Error model",
                   "Deblending minimum contrast", "Outputs besides the catalog",
                   "Picture with ellipses (PNG)", "Picture stretch",
                   "/static/images/sep_extract_example.jpg"]),
    "workflows": ("/workflows/list_published",
                  ["Hot/cold source catalog with masks and local sky",
                   "Sources in a DESI Legacy Surveys cutout",
                   "Hot/cold catalog of a DESI Legacy Surveys cutout",
                   "Colours of the sources in a DESI Legacy Surveys cutout",
                   "Hot/cold catalog and morphology of every galaxy",
                   "Hot/cold catalog and colours in every band"]),
    "welcome": ("/static/welcome.html",
                ["Astronomy source extraction for Galaxy", "Forced photometry in every band",
                 "Measure galaxy morphology", "/static/images/ellipse_overlay_example.jpg"]),
}


def chromium():
    """The Chromium binary, installed from Debian's packages if needed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    print("[browser] installing Debian's chromium with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # root here; elsewhere (e.g. a GitHub runner) through sudo
    sudo = ["sudo", "-E"] if os.geteuid() != 0 and shutil.which("sudo") else []
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which("chromium")


def render(binary, url, screenshot):
    """The page's DOM after its scripts ran, and a screenshot of it."""
    with tempfile.TemporaryDirectory() as profile:
        flags = CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]
        dom = subprocess.run([binary, *flags, "--dump-dom", url], capture_output=True,
                             text=True, timeout=120).stdout
    with tempfile.TemporaryDirectory() as profile:
        flags = CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]
        subprocess.run([binary, *flags, f"--screenshot={screenshot}", url],
                       capture_output=True, timeout=120)
    return dom


def check(galaxy_url, output_dir):
    """(ok, detail) for the stage summary."""
    try:
        binary = chromium()
    except (subprocess.CalledProcessError, OSError) as err:
        return False, f"could not install chromium ({err})"
    missing = []
    for name, (path, expected) in PAGES.items():
        screenshot = os.path.join(output_dir, f"browser_{name}.png")
        dom = render(binary, galaxy_url + path, screenshot)
        lost = [text for text in expected if text not in dom]
        lost += [f"(should be hidden) {text}" for text in ABSENT.get(name, []) if text in dom]
        print(f"[browser] {path}: {len(expected) - len(lost)}/{len(expected)} expected texts; "
              f"screenshot {screenshot}", flush=True)
        missing += [f"{name}: {text}" for text in lost]
    missing += help_pictures(galaxy_url)
    if missing:
        return False, "not on the page: " + "; ".join(missing)
    return True, f"{len(PAGES)} pages, {len(HELP_PICTURES)} help pictures"


HELP_PICTURES = ("sep_extract_example.jpg", "catalog_join_example.jpg",
                 "mask_build_example.jpg", "ellipse_overlay_example.jpg",
                 "sky_compute_example.jpg", "forced_photometry_example.png")


def help_pictures(galaxy_url):
    """The example pictures of the tools' help are served (as JPEG)."""
    import urllib.request
    problems = []
    for name in HELP_PICTURES:
        try:
            with urllib.request.urlopen(f"{galaxy_url}/static/images/{name}", timeout=30) as r:
                head = r.read(4)
                if not (head.startswith(b"\xff\xd8") or head == b"\x89PNG"):
                    problems.append(f"help picture {name} is not a JPEG or PNG")
        except OSError as err:
            problems.append(f"help picture {name}: {err}")
    return problems
