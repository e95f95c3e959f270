"""The drawing page in real headless Chromium, used as a person uses it: a digit drawn with the mouse
across most of the pad, at a third of the pad in a corner and at a quarter of it elsewhere is framed by
the model as MNIST frames its digits (the 28x28 picture it shows beside the answer), the page shows the
model's answer and its ten probabilities, and the full-size drawing is read correctly; the digit a
person says they meant is kept, as drawn, for training.

The smaller drawings come out bolder once framed. The smoke model serving here (4 epochs on 2,400
digits) reads the quarter-pad ones as a 9 in about one training of five, where the trained models read
every place right: `benchmarks.drawing` measures that for any run."""

import os

import numpy as np
import pytest
from PIL import Image

from models import features, feedback
from models.preprocessing import CENTRE, DIGIT_BOX
from reports.browser import DRAWN_DIGIT, PLACES, draw, drawing_page
from tests import support
from tests.support import needs_chromium


@pytest.fixture(scope="module")
def corrections(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("feedback"))


@pytest.fixture(scope="module")
def page(served_model, tmp_path_factory, corrections):
    with support.rest_server(served_model, str(tmp_path_factory.mktemp("drawing")), corrections) as server:
        with drawing_page(server.rest_url) as page:
            yield page


@pytest.mark.e2e
@needs_chromium
def test_a_digit_drawn_anywhere_at_any_size_is_framed_and_read_alike(page, tmp_path):
    drawings = {name: draw(page, *place) for name, place in PLACES.items()}
    page.screenshot(path=str(tmp_path / "page.png"))
    reference = drawings["full size, centred"]
    assert reference.framed.max() > 200 and reference.framed.shape == (features.NUM_PIXELS,)
    # Read as the 7 it is, more likely than all the other digits together.
    assert reference.digit == str(DRAWN_DIGIT) and reference.probabilities[DRAWN_DIGIT] > 0.5, reference
    for name, drawing in drawings.items():
        # The page shows the model's answer: the digit with the highest of the ten probabilities.
        probabilities = drawing.probabilities
        assert len(probabilities) == 10 and abs(sum(probabilities) - 1.0) < 1e-3, name
        assert drawing.digit == str(max(range(10), key=lambda d: probabilities[d])), (name, drawing)
        # Framed as MNIST frames its digits: longer side of the ink 20 px, centre of mass in the middle.
        picture = drawing.framed.reshape(features.IMAGE_SIZE, features.IMAGE_SIZE)
        rows, cols = np.flatnonzero((picture > 25).any(axis=1)), np.flatnonzero((picture > 25).any(axis=0))
        longer = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        assert longer in (DIGIT_BOX - 1, DIGIT_BOX, DIGIT_BOX + 1), (name, longer)
        grid = np.mgrid[0 : features.IMAGE_SIZE, 0 : features.IMAGE_SIZE]
        centre = [(picture * axis).sum() / picture.sum() for axis in grid]
        assert all(abs(c - CENTRE) < 1.0 for c in centre), (name, centre)
    # The same digit in the same place: a smaller drawing only has bolder strokes (the pen stays 22 px).
    alike = {name: round(float(np.corrcoef(d.framed, reference.framed)[0, 1]), 3) for name, d in drawings.items()}
    assert min(alike.values()) > 0.65, alike


@pytest.mark.e2e
@needs_chromium
def test_the_digit_a_person_meant_is_kept_once_for_training(page, corrections):
    page.click("#clear")
    assert not page.is_visible("#feedback")  # Nothing to answer for before a drawing is read.
    draw(page, *PLACES["full size, centred"])
    assert page.is_visible("#feedback")
    page.click("#meant button[data-digit='1']")  # "I meant a 1"
    page.wait_for_function("document.getElementById('thanks').textContent.length > 0", timeout=30_000)
    assert page.text_content("#thanks") == "Thanks: kept as a 1 for training."
    page.click("#right")  # A second answer for the same drawing is not sent.
    span = feedback.open_span(corrections)
    assert [os.path.basename(os.path.dirname(p)) for p in feedback.pictures(corrections, span)] == ["1"]
    # Kept as drawn: the 280x280 pad, not the 28x28 picture the model saw.
    assert Image.open(feedback.pictures(corrections, span)[0]).size == (280, 280)


@pytest.mark.e2e
@needs_chromium
def test_a_cleared_pad_shows_nothing(page):
    draw(page, *PLACES["full size, centred"])
    page.click("#clear")
    assert page.text_content("#digit") == "" and page.text_content("#confidence") == ""
    assert not np.any(page.eval_on_selector("#seen", "c => JSON.parse(c.dataset.pixels)"))
