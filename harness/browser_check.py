"""A person's view of the suite in Galaxy's web UI, checked with headless Chromium.

Opens the tool form of sep_extract, the list of published workflows and the suite's welcome
page in Debian's
Chromium (installed with apt-get when missing), asserts that the form's parameters and
the workflow names are on the rendered page, and keeps screenshots in test-output/.
Then opens the FITS viewer (Aladin Lite, Galaxy's Visualize) on an image of the tests
through ChromeDriver (Debian's chromium-driver, driven by selenium, which Galaxy's own
packages bring): the viewer's page keeps drawing, so a one-shot --dump-dom never settles on
it, while a driven browser can wait until the viewer has drawn its sky view.
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


def chromedriver():
    """Debian's ChromeDriver for the Chromium above, installed with apt-get if needed."""
    found = shutil.which("chromedriver")
    if found:
        return found
    print("[browser] installing Debian's chromium-driver with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = ["sudo", "-E"] if os.geteuid() != 0 and shutil.which("sudo") else []
    install = sudo + ["apt-get", "install", "-y", "-qq", "chromium-driver"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(install, check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("chromedriver")


VIEWER_WAIT = 60  # seconds for the viewer to draw


def viewer_frame_state(driver):
    """(canvases, Aladin elements, text) of the frame, nested frames included, that
    holds the viewer; the viewer sits in an iframe of the visualization's page."""
    canvases = driver.execute_script("return document.querySelectorAll('canvas').length")
    parts = driver.execute_script("return document.querySelectorAll('[class*=aladin]').length")
    if canvases and parts:
        return canvases, parts, driver.execute_script("return document.body.innerText")
    for index in range(len(driver.find_elements("tag name", "iframe"))):
        driver.switch_to.frame(driver.find_elements("tag name", "iframe")[index])
        found = viewer_frame_state(driver)
        driver.switch_to.parent_frame()
        if found[0]:
            return found
    return 0, 0, ""


def open_fits_viewer(galaxy_url, dataset_id, screenshot):
    """'' when Visualize's FITS viewer opened on the dataset and drew its sky view (a
    canvas, Aladin's controls, the ICRS frame selector), else what was missing."""
    import time
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.binary_location = chromium()
    driver = webdriver.Chrome(service=Service(chromedriver()), options=options)
    try:
        driver.set_page_load_timeout(120)
        driver.get(f"{galaxy_url}/visualizations/display?visualization=aladin"
                   f"&dataset_id={dataset_id}")
        deadline = time.time() + VIEWER_WAIT
        state = (0, 0, "")
        while time.time() < deadline:
            driver.switch_to.default_content()
            state = viewer_frame_state(driver)
            if state[0] and state[1] >= 10 and "ICRS" in state[2]:
                break
            time.sleep(1)
        driver.switch_to.default_content()
        driver.save_screenshot(screenshot)
    finally:
        driver.quit()
    canvases, parts, text = state
    if canvases and parts >= 10 and "ICRS" in text:
        print(f"[browser] FITS viewer: {canvases} canvases, {parts} Aladin elements; "
              f"screenshot {screenshot}", flush=True)
        return ""
    return (f"the FITS viewer did not draw within {VIEWER_WAIT} s ({canvases} canvases, "
            f"{parts} Aladin elements)")


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


def check(galaxy_url, output_dir, fits_dataset=None):
    """(ok, detail) for the stage summary; fits_dataset: (id, name) of a FITS dataset to
    open the FITS viewer on."""
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
    viewer = ""
    if fits_dataset:
        try:
            problem = open_fits_viewer(galaxy_url, fits_dataset[0],
                                       os.path.join(output_dir, "browser_fits_viewer.png"))
        except Exception as err:  # no driver, no selenium, a browser that crashed
            problem = f"the FITS viewer could not be opened ({err})"
        if problem:
            missing.append(problem)
        viewer = f", the FITS viewer on {fits_dataset[1]}"
    if missing:
        return False, "not on the page: " + "; ".join(missing)
    return True, f"{len(PAGES)} pages, {len(HELP_PICTURES)} help pictures{viewer}"


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
