"""The drawing page in real headless Chromium: draw a digit with the mouse, see a prediction and 10 bars."""

import pytest

from benchmarks.variants import push_version
from models import features
from serving.config import ServerOptions, single_model
from serving.server import ModelServer
from tests.support import CHROMIUM, CHROMIUM_ARGS, needs_chromium


@pytest.mark.e2e
@needs_chromium
def test_drawing_a_digit_shows_a_prediction(tmp_path, served_model):
    from playwright.sync_api import sync_playwright

    base = str(tmp_path / features.MODEL_NAME)
    push_version(served_model, base, 1)
    server = ModelServer(
        ServerOptions(models=single_model(features.MODEL_NAME, base), rest_api_port=0, port=None)
    ).start()
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
            probabilities = page.eval_on_selector_all(
                "#bars .bar", "rows => rows.map(r => Number(r.dataset.probability))"
            )
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
    finally:
        server.stop()
    assert errors == []
    assert digit.isdigit() and len(probabilities) == 10
    assert abs(sum(probabilities) - 1.0) < 1e-3
    assert max(range(10), key=lambda d: probabilities[d]) == int(digit)
