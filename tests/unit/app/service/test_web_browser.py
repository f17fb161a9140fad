"""The review page in headless Chromium: token gate, pending list, pick labels, submit; a screenshot is kept.

Chromium and its driver come from the Debian packages `chromium` + `chromium-driver`, which `make test` installs.
The screenshot lands in build/screenshots/ (or $LABELGATE_SCREENSHOT_DIR).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.service.api import Assistant
from app.service.web import AssistantBackend, create_app

ROOT = Path(__file__).resolve().parents[4]
TOKEN = "browser-test-token"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER) and os.environ.get("LABELGATE_REQUIRE_BROWSER") == "1":
    raise RuntimeError("LABELGATE_REQUIRE_BROWSER=1 but chromium/chromedriver are missing: run `make browser`")
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER), reason="needs Debian chromium + chromium-driver (make test installs them)"
    ),
]
pytestmark = BROWSER


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def served(components) -> Iterator[tuple[str, Assistant]]:  # type: ignore[no-untyped-def]
    import uvicorn

    assistant = Assistant(components)
    port = _free_port()
    config = uvicorn.Config(
        create_app(lambda: AssistantBackend(assistant), TOKEN), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", assistant
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture()
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def open_page(browser, url: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """get() and wait for `text`: on loaded cores chromedriver's first read after get() is now and then an empty
    document (page source '', seen in CI), the next one has the page."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 15).until(lambda _: text in browser.page_source)


@pytest.mark.server  # uvicorn serves the review page Chromium drives
def test_review_page_in_chromium(served, browser, components) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, assistant = served
    progress = assistant.ask("修好的进度怎么样了")  # after_answer review: only voter B knows 维修进度
    complaint = assistant.ask("你们宣传的和实际不一样")  # before_answer review: 投诉 blocks the answer
    hostile = assistant.ask('<img src=x onerror="window.pwned=1">宣传<script>window.pwned=2</script>')
    wait = WebDriverWait(browser, 15)

    open_page(browser, f"{base}/review", "needs the review token")  # no token: a token form, not the reviews
    assert browser.find_element(By.ID, "token") and not browser.find_elements(By.CSS_SELECTOR, ".review")

    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "section.review")))
    assert "token" not in browser.current_url  # the token moved into an HttpOnly cookie
    cards = {card.get_attribute("data-thread"): card for card in browser.find_elements(By.CSS_SELECTOR, ".review")}
    assert set(cards) == {progress.thread_id, complaint.thread_id, hostile.thread_id}
    assert browser.execute_script("return window.pwned") is None  # queries are shown as text, never as markup
    assert "<script>window.pwned=2</script>" in cards[hostile.thread_id].find_element(By.TAG_NAME, "h2").text
    card = cards[progress.thread_id]
    assert "修好的进度怎么样了" in card.text and "B:" in card.text and "answered; confirm labels" in card.text
    assert "blocks the answer" in cards[complaint.thread_id].text

    for review in assistant.pending_reviews():  # the page starts from each review's proposal
        boxes = cards[review.thread_id].find_elements(By.CSS_SELECTOR, "input.pick")
        ticked = {box.get_attribute("value") for box in boxes if box.is_selected()}
        assert review.payload["proposed"] and ticked == set(review.payload["proposed"])

    browser.find_element(By.ID, "reviewer").send_keys("dora")
    for box in card.find_elements(By.CSS_SELECTOR, "input.pick"):
        if box.is_selected() != (box.get_attribute("value") == "维修进度"):
            box.click()
    shot_dir = Path(os.environ.get("LABELGATE_SCREENSHOT_DIR", ROOT / "build" / "screenshots"))
    shot_dir.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot_dir / "review-page.png"))

    card.find_element(By.CSS_SELECTOR, "button.submit").click()
    wait.until(lambda _: "resolved:" in card.find_element(By.CSS_SELECTOR, ".message").text)
    assert "维修进度" in card.find_element(By.CSS_SELECTOR, ".message").text
    assert [p.thread_id for p in assistant.pending_reviews()] == [complaint.thread_id, hostile.thread_id]
    [row] = components.feedback.rows()
    assert (row.labels, row.reviewer, row.source) == (["售后", "维修进度"], "dora", "human")
    assert (shot_dir / "review-page.png").stat().st_size > 10_000

    other = cards[complaint.thread_id]  # no reviewer → refused in the page, nothing sent
    browser.execute_script("document.getElementById('reviewer').value = ''")
    other.find_element(By.CSS_SELECTOR, "button.submit").click()
    assert "enter your name" in other.find_element(By.CSS_SELECTOR, ".message").text
    assert [p.thread_id for p in assistant.pending_reviews()] == [complaint.thread_id, hostile.thread_id]
