"""What a run's model reads on the drawing page: a "7" drawn with the mouse in headless Chromium at full
size, at a third of the pad in a corner and at a quarter of it elsewhere, as a person draws on the
served page (`/`). The suite's drawing-page test draws the same way with the smoke model.

    .venv/bin/python -m benchmarks.drawing [--output output]

The model is the newest pushed one under `--output`, served by this project's server on a free loopback
port. The page's pen is 22 px on a 280 px pad, so the smaller drawings are bolder once framed to MNIST's
20 px box: the smoke model, 4 epochs on 2,400 digits, reads some of them as a 9 in some of its trainings.
Needs Debian's chromium (`make browser`).
"""

import argparse
import contextlib
import dataclasses
import shutil
import time
from typing import Any, Dict, Iterator, List, Optional

import numpy as np

from benchmarks import host, runs
from benchmarks.serving import served
from pipeline import configs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The machine is offline: no background networking, no component updates (see `make browser`).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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
(22 px of 280) leaves a blob rather than a digit (noted in README.md's drawing-page section)."""


@dataclasses.dataclass(frozen=True)
class Drawing:
    """What the page showed for one drawing."""

    digit: str
    probabilities: List[float]
    framed: np.ndarray
    """The 784 pixels the model saw (the drawing framed as MNIST frames its digits)."""


@contextlib.contextmanager
def drawing_page(saved_model: str) -> Iterator[Any]:
    """A Playwright page on the drawing page of `saved_model`, served as version 1 on a free port; on
    leaving, fails if the page's script raised."""
    from playwright.sync_api import sync_playwright

    errors: List[str] = []
    with served(saved_model, port=None) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.rest_url + "/")
        yield page
        browser.close()
    if errors:
        raise RuntimeError(f"the drawing page's script failed: {errors}")


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


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--output", default=configs.OUTPUT_ROOT, help="a pipeline run's --output folder")
    args = parser.parse_args(argv)
    if CHROMIUM is None:
        raise SystemExit("needs Debian's chromium: `make browser` (root) installs it")
    model = runs.pushed_model(args.output)
    started = time.perf_counter()
    with drawing_page(model) as page:
        drawings = {name: draw(page, *place) for name, place in PLACES.items()}
    results = {
        name: {"read": d.digit, f"probability_of_{DRAWN_DIGIT}": round(d.probabilities[DRAWN_DIGIT], 4)}
        for name, d in drawings.items()
    }
    return host.reported(
        {
            "model": model,
            "drawn": DRAWN_DIGIT,
            "read_right": sum(r["read"] == str(DRAWN_DIGIT) for r in results.values()),
            "seconds": round(time.perf_counter() - started, 1),
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
