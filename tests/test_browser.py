"""Real-browser tests: headless Debian Chromium (selenium with the system's chromedriver, nothing downloaded)
drives the explorer (``python -m pytorch_grad_cam.app``) and the documentation site (mkdocs' ``site/``).

Skipped with the reason when Chromium, its driver or selenium is missing, when gradio is not installed (the
explorer) or when there is no docs site to serve. No timing is asserted; the time from clicking Run to the GradCAM
map on the page is printed.

``GRADCAM_SCREENSHOTS=1 python -m pytest tests/test_browser.py`` also writes ``docs/images/explorer.png`` and
``docs/images/docs_home.png``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    ROOT,
    browser_skip_reason,
    external_requests,
    free_port,
    make_driver,
    python_command,
    screenshots_wanted,
    serve,
    wait_until,
)

_SKIP = browser_skip_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")

EXPLORER_SCREENSHOT = ROOT / "docs" / "images" / "explorer.png"
DOCS_SCREENSHOT = ROOT / "docs" / "images" / "docs_home.png"
SCENE = "single 3"
#: The methods shown beside GradCAM in docs/images/explorer.png.
SCREENSHOT_METHODS = ("HiResCAM", "ScoreCAM", "EigenCAM")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    browser = make_driver()
    try:
        yield browser
    finally:
        browser.quit()


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def _text(driver: Any, selector: str) -> str:
    return str(driver.find_element(_by().CSS_SELECTOR, selector).text)


def _value(driver: Any, selector: str) -> str:
    """What a gradio dropdown shows: its input's value."""
    return str(driver.find_element(_by().CSS_SELECTOR, f"{selector} input").get_attribute("value"))


# ------------------------------------------------------------------------------------------------ the explorer
@pytest.fixture(scope="module")
def explorer_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The explorer served by ``python -m pytorch_grad_cam.app`` on a free port, for the module."""
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed: pip install -e '.[app]'")
    port = free_port()
    log = tmp_path_factory.mktemp("explorer") / "server.log"
    command = python_command("-m", "pytorch_grad_cam.app", "--no-browser", "--offline", "--port", str(port))
    with serve(command, f"http://127.0.0.1:{port}/", timeout=180, log=log) as url:
        yield url


def _open_explorer(driver: Any, url: str) -> None:
    """Load the page and wait until the first scene is analysed (the status line names the prediction)."""
    driver.get(url)
    wait_until(lambda: "predicts" in _text(driver, "#message"), 120, "the explorer to analyse its first scene")


def _pick(driver: Any, menu: str, option: str) -> None:
    """Choose ``option`` in the gradio dropdown ``#menu`` the way a person does: open it, click the option."""
    by = _by()
    driver.find_element(by.CSS_SELECTOR, f"#{menu} input").click()
    item = wait_until(
        lambda: driver.find_element(by.CSS_SELECTOR, f'#{menu} li[aria-label="{option}"]'), 20, f"{option} in #{menu}"
    )
    item.click()


def _shown_maps(driver: Any) -> list[Any]:
    """The gallery's images that have finished loading."""
    images = driver.find_elements(_by().CSS_SELECTOR, "#maps img")
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    return [image for image in images if driver.execute_script(loaded, image)]


def _score_rows(driver: Any) -> dict[str, list[str]]:
    """The scores table: method → its cells (time, pointing game, relevance mass)."""
    rows = driver.find_elements(_by().CSS_SELECTOR, "#scores table tbody tr")
    table = {}
    for row in rows:
        cells = [cell.text.strip() for cell in row.find_elements(_by().TAG_NAME, "td")]
        table[cells[0]] = cells[1:]
    return table


def test_explorer_runs_gradcam_on_a_demo_scene(
    driver: Any, explorer_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _open_explorer(driver, explorer_url)
    _pick(driver, "scene", SCENE)
    wait_until(lambda: _text(driver, "#message").startswith(f"{SCENE} ·"), 60, f"the scene {SCENE} to be analysed")
    assert "GradCAM" in _text(driver, "#methods")  # the default method
    assert _value(driver, "#layer").startswith("auto: features.3")
    assert _value(driver, "#class").endswith("(ground truth)")

    start = time.perf_counter()
    driver.find_element(_by().CSS_SELECTOR, "#run").click()
    maps = wait_until(lambda: _shown_maps(driver), 120, "the GradCAM map to be shown")
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nexplorer: click on Run → GradCAM map shown ({SCENE}, demo:cnn): {seconds:.2f} s")

    assert len(maps) == 1 and maps[0].get_attribute("alt").startswith("GradCAM · ")
    rows = wait_until(lambda: _score_rows(driver), 30, "the scores table")
    time_cell, pointing, mass = rows["GradCAM"]
    assert float(time_cell) >= 0
    assert float(pointing) in (0.0, 1.0)
    assert 0.0 <= float(mass) <= 1.0
    assert _text(driver, "#message").startswith("explained ")
    assert external_requests(driver) == [], "the page fetched something from outside this machine"
    if screenshots_wanted():  # the documentation's picture: GradCAM beside three more methods
        for method in SCREENSHOT_METHODS:
            _pick(driver, "methods", method)
        driver.find_element(_by().CSS_SELECTOR, "#run").click()
        wait_until(lambda: len(_shown_maps(driver)) == 1 + len(SCREENSHOT_METHODS), 120, "the maps of the screenshot")
        wait_until(lambda: len(_score_rows(driver)) == 1 + len(SCREENSHOT_METHODS), 30, "the screenshot's scores")
        driver.set_window_size(1400, 1200)
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(1.0)  # the layout settles after the resize
        EXPLORER_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(EXPLORER_SCREENSHOT))
        driver.set_window_size(1400, 1000)


def test_explorer_shows_an_error_for_a_file_that_is_not_an_image(
    driver: Any, explorer_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not an image\n")
    _open_explorer(driver, explorer_url)
    driver.find_element(_by().CSS_SELECTOR, "#upload input[type=file]").send_keys(str(notes))
    message = wait_until(
        lambda: (text := _text(driver, "#message")) and "notes.txt" in text and text, 60, "the upload's error message"
    )
    assert message.startswith("Error:") and "is not an image" in message
    assert "Traceback" not in driver.find_element(_by().TAG_NAME, "body").text
    assert not _shown_maps(driver)


# ------------------------------------------------------------------------------------------------ the docs site
@pytest.fixture(scope="module")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built documentation: ``site/`` when it is there, else a fresh ``mkdocs build`` into a temporary folder
    (the tutorial notebooks rendered without running them: seconds instead of minutes); skipped when neither is
    possible."""
    site = ROOT / "site"
    if (site / "index.html").is_file():
        return site
    if not (ROOT / "mkdocs.yml").is_file():
        pytest.skip("no docs site: site/index.html is missing and there is no mkdocs.yml to build it")
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("no docs site: site/index.html is missing and mkdocs is not installed to build it")
    out = tmp_path_factory.mktemp("site")
    # The configuration goes in on stdin (paths stay relative to the repository root), with mkdocs-jupyter's
    # execution of the notebooks turned off: this test reads the home and API pages only.
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace("execute: true", "execute: false")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--quiet", "--config-file", "-", "--site-dir", str(out)],
        cwd=ROOT,
        input=config,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    if result.returncode != 0 or not (out / "index.html").is_file():
        pytest.fail(f"mkdocs build failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return out


@pytest.fixture(scope="module")
def docs_url(docs_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("docs") / "server.log"
    command = python_command("-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(docs_site))
    with serve(command, f"http://127.0.0.1:{port}/", timeout=30, log=log) as url:
        yield url


NAME = re.compile(r"pytorch[-_ ]grad[-_ ]cam", re.IGNORECASE)


def test_docs_home_and_an_api_page_render(driver: Any, docs_url: str) -> None:
    by = _by()
    driver.get(docs_url)
    wait_until(lambda: driver.find_element(by.TAG_NAME, "body").text.strip(), 30, "the docs home page")
    heading = " ".join(element.text for element in driver.find_elements(by.CSS_SELECTOR, "h1"))
    assert NAME.search(driver.title) or NAME.search(heading), (driver.title, heading)
    if screenshots_wanted():
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(DOCS_SCREENSHOT))

    # The API reference: a navigation link that says "API" (its text may be in a collapsed menu, so textContent).
    links = []
    for anchor in driver.find_elements(by.TAG_NAME, "a"):
        label = " ".join((anchor.get_attribute("textContent") or "").split())
        href = anchor.get_attribute("href") or ""
        if re.search(r"\bAPI\b", label) and href.startswith(docs_url) and href not in links:
            links.append(href)
    assert links, "the home page links to no page whose title says API"
    visited = []
    for href in links[:6]:
        driver.get(href)
        text = wait_until(lambda: driver.find_element(by.TAG_NAME, "body").text, 30, f"the page {href}")
        visited.append(href)
        if "GradCAM" in text:
            return
    pytest.fail(f"no API page shows GradCAM; visited {visited}")
