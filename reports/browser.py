"""Pages in headless Chromium: the browser the run report and the served drawing page are checked in,
and the drawing page used as a person uses it (a "7" drawn with the mouse at several sizes and places).

The tests check the page with the smoke model; `benchmarks.drawing` records what a run's model reads.
Needs Debian's chromium (`make browser`): the machine cannot download a browser of its own.
"""

import contextlib
import dataclasses
import shutil
from typing import Any, ContextManager, Iterator, List

import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""The machine is offline: no background networking, no component updates."""
SEVEN = [(0.0, 0.0), (1.0, 0.0), (0.4, 1.0)]
"""A "7" in unit coordinates: a bar across the top, then a stroke down to the bottom left."""
DRAWN_DIGIT = 7
PLACES = {
    "full size, centred": (0.2, 0.15, 0.6),
    "a third of the pad, top-left corner": (0.03, 0.03, 0.33),
    "a quarter of the pad, bottom right": (0.7, 0.68, 0.25),
    "a quarter of the pad, top right": (0.72, 0.04, 0.25),
    "a quarter of the pad, centred": (0.4, 0.4, 0.25),
}
"""(left, top, size) of the drawing, as shares of the pad's width. Smaller than this, the page's pen
(22 px of 280) leaves a blob rather than a digit."""


@dataclasses.dataclass(frozen=True)
class Drawing:
    """What the page showed for one drawing."""

    digit: str
    probabilities: List[float]
    framed: np.ndarray
    """The 784 pixels the model saw (the drawing framed as MNIST frames its digits)."""


@contextlib.contextmanager
def opened(url: str) -> Iterator[Any]:
    """A Playwright page on `url` in headless Chromium; on leaving, fails if the page's script raised."""
    from playwright.sync_api import sync_playwright

    errors: List[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        yield page
        browser.close()
    if errors:
        raise RuntimeError(f"the script of {url} failed: {errors}")


def drawing_page(rest_url: str) -> ContextManager[Any]:
    """The drawing page of the model server at `rest_url`, opened (`opened`)."""
    return opened(rest_url + "/")


def draw(page: Any, left: float, top: float, size: float) -> Drawing:
    """Clears the pad, draws the 7 with the mouse, and returns what the page showed."""
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
    return Drawing(
        digit=page.text_content("#digit"),
        probabilities=page.eval_on_selector_all("#bars .bar", "rows => rows.map(r => Number(r.dataset.probability))"),
        framed=np.array(page.eval_on_selector("#seen", "c => JSON.parse(c.dataset.pixels)"), float),
    )
