"""The report opened in headless Chromium (file://, offline): it renders, alarms show, hostile queries stay text; a
screenshot is kept in build/screenshots/report.png (or $LABELGATE_SCREENSHOT_DIR)."""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path

from tests.unit.app.ops.monitor.test_monitor_report import HOSTILE, NOW, shifted_log, store  # noqa: F401 (fixture)
from tests.unit.app.service.test_web_browser import BROWSER, ROOT, browser, open_page  # noqa: F401 (the fixture)

pytestmark = BROWSER  # the browser marker and its skip rule


def test_report_in_chromium(settings, store, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    from selenium.webdriver.common.by import By

    from app.ops.monitor.report import write_report

    shifted_log(store)
    page = tmp_path / "report.html"
    write_report(settings, since="7d", out=page, now=NOW, tz=UTC)
    browser.set_window_size(1300, 2000)
    open_page(browser, page.as_uri(), "<h1>labelgate report</h1>")

    assert browser.title == "labelgate report"
    assert browser.execute_script("return window.pwned") is None  # hostile markup in a query is shown as text
    cells = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "table.slowest td.query")]
    assert HOSTILE in cells
    statuses = {
        box.get_attribute("data-alarm"): box.get_attribute("data-status")
        for box in browser.find_elements(By.CSS_SELECTOR, ".alarm-box")
    }
    assert statuses == {"label_shift": "alarm", "escalation_rate": "alarm"}
    charts = browser.find_elements(By.CSS_SELECTOR, ".charts svg")
    assert len(charts) == 6 and all(svg.size["width"] == 600 and svg.size["height"] == 270 for svg in charts)
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 1300, "the page scrolls sideways"
    bars = browser.find_elements(By.CSS_SELECTOR, ".charts figure:first-child rect[fill='#1f77b4']")
    assert len(bars) == 28  # one auto bar per 6-hour bucket of the week

    height, inner = browser.execute_script("return [document.documentElement.scrollHeight, window.innerHeight]")
    browser.set_window_size(1300, min(height + 2000 - inner, 5000))  # the whole page in one shot
    shot_dir = Path(os.environ.get("LABELGATE_SCREENSHOT_DIR", ROOT / "build" / "screenshots"))
    shot_dir.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot_dir / "report.png"))
    assert (shot_dir / "report.png").stat().st_size > 20_000
