"""`models.feedback` and the data plane's `store_feedback`: labelled pictures kept in spans, the open
span filled and sealed, the window of the newest sealed spans, and what the server refuses to keep."""

import os

import numpy as np
import pytest
from PIL import Image

from models import feedback
from serving import errors
from serving.config import ServerOptions
from serving.dataplane import DataPlane
from tests import support


def test_pictures_fill_the_open_span_until_it_is_sealed(tmp_path):
    root = str(tmp_path / "feedback")
    assert (feedback.spans(root), feedback.open_span(root), feedback.seal(root)) == ([], 1, 0)
    first = feedback.add(root, b"one", 3)
    assert first.startswith(os.path.join(root, "span-1", "3", "")) and open(first, "rb").read() == b"one"
    feedback.add(root, b"two", 3)
    assert feedback.seal(root) == 1 and feedback.is_sealed(root, 1)
    assert feedback.open_span(root) == 2 and feedback.seal(root) == 1  # An empty open span stays open.
    feedback.add(root, b"three", 0)
    assert len(feedback.pictures(root, 1)) == 2 and len(feedback.pictures(root, 2)) == 1
    assert not [name for _, _, files in os.walk(root) for name in files if name.endswith(".partial")]
    with pytest.raises(ValueError, match="label 10 is not a class 0-9"):
        feedback.add(root, b"x", 10)


def test_the_window_is_the_newest_sealed_spans(tmp_path):
    root = str(tmp_path)
    for _ in range(4):
        feedback.add(root, b"picture", 1)
        feedback.seal(root)
    feedback.add(root, b"open", 1)  # span 5, not sealed
    (tmp_path / "span-x").mkdir()  # not a span
    assert feedback.spans(root) == [1, 2, 3, 4, 5] and feedback.sealed_spans(root) == [1, 2, 3, 4]
    assert feedback.window(root, 2) == [3, 4] and feedback.window(root, 9) == [1, 2, 3, 4]
    assert feedback.window(root, 0) == []


def test_the_server_keeps_what_training_can_read_and_names_what_it_cannot(tmp_path):
    root = tmp_path / "feedback"
    plane = DataPlane(None, ServerOptions(feedback_dir=str(root)), lambda name: None)  # type: ignore[arg-type]
    seven, _ = support.mnist_digits("t10k", 1)
    stored = plane.store_feedback(support.png_bytes(seven[0]), 7)
    assert stored.startswith(str(root / "span-1" / "7")) and Image.open(stored).size == (28, 28)
    for picture, label, message in [
        (support.png_bytes(seven[0]), 12, "label: expected a class 0-9, got 12"),
        (support.png_bytes(seven[0]), True, "label: expected a class 0-9, got True"),
        (b"not a picture", 1, "picture: not a PNG, JPEG, GIF or BMP picture"),
        (support.png_bytes(np.zeros((28, 28))), 1, "picture: no digit found in it"),
    ]:
        with pytest.raises(errors.InvalidArgument, match=message.replace("(", r"\(")):
            plane.store_feedback(picture, label)
    assert len(feedback.pictures(str(root), 1)) == 1
    with pytest.raises(errors.NotFound, match="Feedback is off"):
        DataPlane(None, ServerOptions(), lambda name: None).store_feedback(support.png_bytes(seven[0]), 7)  # type: ignore[arg-type]
    (tmp_path / "file").write_text("")
    blocked = DataPlane(None, ServerOptions(feedback_dir=str(tmp_path / "file")), lambda name: None)  # type: ignore[arg-type]
    with pytest.raises(errors.Unavailable, match="could not be stored"):
        blocked.store_feedback(support.png_bytes(seven[0]), 7)
