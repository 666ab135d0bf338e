"""The HTML report in headless Chromium: nothing wider than the window at phone and laptop widths
(charts scale, wide tables scroll inside their own box), and the findings come first."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_agentmon._report import html as report_html
from otel_agentmon._report.model import from_insights
from otel_agentmon.analytics import analyze
from tests.support.browser import chromium
from tests.test_analytics import build

pytestmark = pytest.mark.subprocess

#: elements whose right edge passes the window's (a scrolling table box may hold wider content)
OVERFLOW = """
const width = document.documentElement.clientWidth;
const inScroller = (el) => el.closest('.tw') !== null && el.closest('.tw') !== el;
return [...document.querySelectorAll('body *')]
  .filter((el) => !inScroller(el) && el.getBoundingClientRect().right > width + 1)
  .map((el) => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right));
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("width", [420, 1366])
def test_the_report_fits_the_window(tmp_path: Path, width: int) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html.render(from_insights(analyze(build(slowdown=2.0).records), "test")))
    driver = chromium(max(width, 800), 900)
    try:
        # Headless windows are at least 500 px wide: a phone width is set by device emulation.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        driver.get(page.as_uri())
        assert driver.execute_script(OVERFLOW) == []
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width
        # Every evidence unfolded (long expressions and 32-hex trace ids wrap inside the page).
        driver.execute_script("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        assert driver.execute_script(OVERFLOW) == []
        charts = driver.execute_script(
            "return [...document.querySelectorAll('svg')].map((s) => s.getBoundingClientRect().width)")
        assert charts and all(0 < w <= width for w in charts), charts
        first = driver.execute_script("return document.querySelector('h2').textContent")
        assert first == "Findings"
    finally:
        driver.quit()
