"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver`` packages) driven by Selenium."""

from __future__ import annotations

import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def _first(paths: tuple[str, ...], name: str) -> str:
    for path in paths:
        if Path(path).exists():
            return path
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: apt-get install chromium chromium-driver")
    return found


def chromium(width: int = 1600, height: int = 1000) -> webdriver.Chrome:
    """A headless Chromium; the caller quits it."""
    options = webdriver.ChromeOptions()
    options.binary_location = _first(CHROMIUM_CANDIDATES, "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    service = Service(executable_path=_first(DRIVER_CANDIDATES, "chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def set_viewport(driver: webdriver.Chrome, width: int, height: int = 900) -> None:
    """Lay the page out ``width`` CSS pixels wide: headless Chromium's window is at least 500 px
    wide, so narrower (phone) widths are emulated with the DevTools protocol."""
    driver.set_window_size(max(width, 500), height + 100)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


#: Installed before any page script runs: what the page throws or logs as an error.
_ERRORS = """
window.__errors = [];
addEventListener('error', (e) => window.__errors.push(String(e.message || e)));
addEventListener('unhandledrejection', (e) => window.__errors.push('unhandled: ' + String(e.reason)));
const consoleError = console.error.bind(console);
console.error = (...args) => { window.__errors.push(args.map(String).join(' ')); consoleError(...args); };
"""


def capture_errors(driver: webdriver.Chrome) -> None:
    """From the next page load on, ``page_errors(driver)`` returns what its scripts threw."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _ERRORS})


def page_errors(driver: webdriver.Chrome) -> list[str]:
    errors: list[str] = driver.execute_script("return window.__errors || []")
    return errors
