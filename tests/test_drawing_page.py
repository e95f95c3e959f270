"""The drawing page in real headless Chromium: draw a digit with the mouse, see a prediction and 10 bars."""

import shutil

import pytest

from pipeline import configs
from serving.server import ModelServer
from serving.model_store import copy_version

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The machine is offline: no background networking, no component updates (see `make browser`).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: `make browser` (root) installs it")
def test_drawing_a_digit_shows_a_prediction(tmp_path, smoke_output):
    from playwright.sync_api import sync_playwright

    from tests.test_serving import _pushed_version

    copy_version(_pushed_version(smoke_output), str(tmp_path / "digits"), 1)
    server = ModelServer(str(tmp_path / "digits"), configs.MODEL_NAME, rest_port=0, grpc_port=None).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.rest_url + "/")
            box = page.locator("#pad").bounding_box()
            # A "7": a bar across the top, then a stroke down to the bottom left.
            x0, y0 = box["x"] + 0.25 * box["width"], box["y"] + 0.25 * box["height"]
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(box["x"] + 0.75 * box["width"], y0, steps=10)
            page.mouse.move(box["x"] + 0.45 * box["width"], box["y"] + 0.8 * box["height"], steps=10)
            page.mouse.up()
            page.wait_for_function("document.getElementById('digit').textContent.length === 1", timeout=30_000)
            digit = page.text_content("#digit")
            probabilities = page.eval_on_selector_all("#bars .bar", "rows => rows.map(r => Number(r.dataset.probability))")
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
    finally:
        server.stop()
    assert errors == []
    assert digit.isdigit() and len(probabilities) == 10
    assert abs(sum(probabilities) - 1.0) < 1e-3
    assert max(range(10), key=lambda d: probabilities[d]) == int(digit)
