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
