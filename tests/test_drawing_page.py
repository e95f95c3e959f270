"""The drawing page in real headless Chromium, used as a person uses it: a digit drawn with the mouse
at full size, half size in a corner and quarter size elsewhere is framed by the model the same way (the
28x28 picture it shows beside the answer), and read the same; a cleared pad sends nothing."""

import numpy as np
import pytest

from benchmarks.variants import push_version
from models import features
from serving.config import ServerOptions, single_model
from serving.server import ModelServer
from tests.support import CHROMIUM, CHROMIUM_ARGS, needs_chromium

SEVEN = [(0.0, 0.0), (1.0, 0.0), (0.4, 1.0)]
"""A "7" in unit coordinates: a bar across the top, then a stroke down to the bottom left."""
PLACES = {
    "full size, centred": (0.2, 0.15, 0.6),
    "half size, top-left corner": (0.03, 0.03, 0.3),
    "quarter size, bottom right": (0.72, 0.7, 0.15),
    "quarter size, top right": (0.8, 0.05, 0.15),
}
"""(left, top, size) of the drawing, as shares of the pad's width."""


@pytest.fixture(scope="module")
def page(tmp_path_factory, served_model):
    from playwright.sync_api import sync_playwright

    base = str(tmp_path_factory.mktemp("page") / features.MODEL_NAME)
    push_version(served_model, base, 1)
    server = ModelServer(
        ServerOptions(models=single_model(features.MODEL_NAME, base), rest_api_port=0, port=None)
    ).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.rest_url + "/")
        yield page
        browser.close()
    server.stop()
    assert errors == []


def _draw(page, left: float, top: float, size: float):
    """Clears the pad, draws the 7 with the mouse, and returns (digit shown, probabilities, framed)."""
    page.click("#clear")
    box = page.locator("#pad").bounding_box()

    def at(x: float, y: float):
        return box["x"] + (left + size * x) * box["width"], box["y"] + (top + size * y) * box["height"]

    page.mouse.move(*at(*SEVEN[0]))
    page.mouse.down()
    for point in SEVEN[1:]:
        page.mouse.move(*at(*point), steps=12)
    page.mouse.up()
    page.wait_for_function("document.getElementById('digit').textContent.length === 1", timeout=30_000)
    digit = page.text_content("#digit")
    probabilities = page.eval_on_selector_all("#bars .bar", "rows => rows.map(r => Number(r.dataset.probability))")
    framed = np.array(page.eval_on_selector("#seen", "c => JSON.parse(c.dataset.pixels)"), float)
    return digit, probabilities, framed


@pytest.mark.e2e
@needs_chromium
def test_a_digit_drawn_anywhere_at_any_size_is_framed_and_read_alike(page, tmp_path):
    results = {name: _draw(page, *place) for name, place in PLACES.items()}
    page.screenshot(path=str(tmp_path / "page.png"))
    reference = results["full size, centred"][2]
    assert reference.max() > 200 and reference.shape == (features.NUM_PIXELS,)
    for name, (digit, probabilities, _) in results.items():
        assert digit.isdigit() and len(probabilities) == 10, name
        assert abs(sum(probabilities) - 1.0) < 1e-3, name
        assert max(range(10), key=lambda d: probabilities[d]) == int(digit), name
    # The model saw the same digit (a small drawing has strokes as thick as a big one's, so it is bolder)...
    alike = {name: round(float(np.corrcoef(framed, reference)[0, 1]), 3) for name, (_, _, framed) in results.items()}
    assert min(alike.values()) > 0.75, alike
    # ...and read it the same.
    assert len({digit for digit, _, _ in results.values()}) == 1, {name: r[0] for name, r in results.items()}
