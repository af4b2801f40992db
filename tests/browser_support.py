"""Helpers of the real-browser tests (tests/test_browser.py): headless Debian Chromium through selenium, local
servers on free ports, and waiting for pages.

Chromium and its driver come from the system (``apt-get install chromium chromium-driver``): the driver is given
to selenium explicitly, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

#: Where the tests look for the browser and its driver (the Debian packages' paths first).
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
#: Set to 1 to have the tests write the documentation's screenshots (docs/images/...).
SCREENSHOTS_VARIABLE = "GRADCAM_SCREENSHOTS"
ROOT = Path(__file__).resolve().parents[1]


def find_browser() -> tuple[str | None, str | None]:
    """``(chromium, chromedriver)`` paths, each ``None`` when not installed (``CHROMIUM`` / ``CHROMEDRIVER``
    environment variables override)."""

    def first(variable: str, candidates: Sequence[str], name: str) -> str | None:
        given = os.environ.get(variable)
        if given:
            return given if os.access(given, os.X_OK) else None
        found = next((path for path in candidates if os.access(path, os.X_OK)), None)
        return found or shutil.which(name)

    return first("CHROMIUM", CHROMIUM_CANDIDATES, "chromium"), first("CHROMEDRIVER", DRIVER_CANDIDATES, "chromedriver")


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    chromium, driver = find_browser()
    if chromium is None or driver is None:
        return "headless Chromium and its driver are not installed (apt-get install chromium chromium-driver)"
    return None


def make_driver(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chromium WebDriver with the system's driver (no download), a window of ``width × height``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    if chromium is None or driver is None:
        raise RuntimeError(browser_skip_reason() or "no browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=driver)
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_page_load_timeout(60)
    return browser


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Return once ``url`` answers 200; ``RuntimeError`` after ``timeout`` seconds or when ``process`` exits."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s ({last})")


@contextlib.contextmanager
def serve(command: Sequence[str], url: str, timeout: float, cwd: Path = ROOT, log: Path | None = None) -> Iterator[str]:
    """Run a server ``command`` until the block ends (terminated, then killed), yielding ``url`` once it answers.

    Its output goes to ``log`` (default: discarded), which the error message quotes when it fails to start.
    """
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    sink = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_http(url, timeout, process)
        except RuntimeError as error:
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{error}\n{tail}") from None
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if log is not None:
            sink.close()  # type: ignore[union-attr]


def python_command(*args: str) -> list[str]:
    """``python <args>`` with this interpreter."""
    return [sys.executable, *args]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned); ``AssertionError`` naming ``what`` after
    ``timeout`` seconds. Exceptions inside ``condition`` count as "not yet" (a stale element mid-render)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # stale or not-yet-rendered elements: try again until the deadline
            last_error = error
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


def external_requests(driver: Any, allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> list[str]:
    """The URLs the page requested from hosts other than ``allowed_hosts`` (from Chromium's performance log;
    ``data:``/``blob:`` URLs are local)."""
    import json
    from urllib.parse import urlparse

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.requestWillBeSent":
            continue
        url = message["params"]["request"]["url"]
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in allowed_hosts:
            urls.append(url)
    return urls


def screenshots_wanted() -> bool:
    """Whether the tests should write the documentation's screenshots (``GRADCAM_SCREENSHOTS=1``)."""
    return os.environ.get(SCREENSHOTS_VARIABLE, "") not in ("", "0", "false", "False")
