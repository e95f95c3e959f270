"""The feedback dataset: digits people drew and labelled (the digit they meant), kept in spans.

    <feedback root>/span-<N>/<label>/<id>.png     one labelled picture, as it was drawn
    <feedback root>/span-<N>/COMPLETE              the span is sealed: no picture is added to it any more

Pictures go into the open span (the newest one without `COMPLETE`, or a new one after the newest sealed
span). Training reads sealed spans only, so that a run never sees a span half-filled and two runs of
the same window read the same pictures; sealing the open span (`seal`) is what starts a new one. A
picture is written under a temporary name and renamed into place, so a reader never sees half a file
and a server stopped mid-write leaves no picture behind.

The span folder's name follows TFX's `{SPAN}` convention (`span-{SPAN}`); `SPAN_PATTERN` is the
ExampleGen input pattern of one span's pictures.
"""

import os
import re
import uuid
from typing import List

import tensorflow as tf

from models import features

SPAN_FOLDER = "span-{SPAN}"
SPAN_PATTERN = f"{SPAN_FOLDER}/*/*.png"
"""ExampleGen's split pattern for the pictures of a span (TFX's `{SPAN}` placeholder)."""
COMPLETE = "COMPLETE"
"""The marker file of a sealed span."""
_SPAN = re.compile(r"span-(\d+)$")


def span_folder(root: str, span: int) -> str:
    return os.path.join(root, SPAN_FOLDER.replace("{SPAN}", str(span)))


def spans(root: str) -> List[int]:
    """Every span under `root`, in order."""
    if not tf.io.gfile.isdir(root):
        return []
    found = (_SPAN.match(name.rstrip("/")) for name in tf.io.gfile.listdir(root))
    return sorted(int(match.group(1)) for match in found if match)


def is_sealed(root: str, span: int) -> bool:
    return tf.io.gfile.exists(os.path.join(span_folder(root, span), COMPLETE))


def sealed_spans(root: str) -> List[int]:
    return [span for span in spans(root) if is_sealed(root, span)]


def window(root: str, size: int) -> List[int]:
    """The newest `size` sealed spans (0: none), oldest first: the rolling window a run trains on."""
    sealed = sealed_spans(root)
    return sealed[-size:] if size > 0 else []


def open_span(root: str) -> int:
    """The span new pictures go into: the newest unsealed one, else one after the newest."""
    existing = spans(root)
    if existing and not is_sealed(root, existing[-1]):
        return existing[-1]
    return existing[-1] + 1 if existing else 1


def pictures(root: str, span: int) -> List[str]:
    """The span's pictures, in name order."""
    return sorted(tf.io.gfile.glob(os.path.join(span_folder(root, span), "*", "*.png")))


def add(root: str, picture: bytes, label: int) -> str:
    """Stores one labelled picture (PNG bytes) in the open span, atomically; its path."""
    if not 0 <= label < features.NUM_CLASSES:
        raise ValueError(f"label {label} is not a class 0-{features.NUM_CLASSES - 1}")
    folder = os.path.join(span_folder(root, open_span(root)), str(label))
    tf.io.gfile.makedirs(folder)
    name = f"{uuid.uuid4().hex}.png"
    partial = os.path.join(folder, f".{name}.partial")
    with tf.io.gfile.GFile(partial, "wb") as f:
        f.write(picture)
    path = os.path.join(folder, name)
    tf.io.gfile.rename(partial, path, overwrite=True)
    return path


def seal(root: str) -> int:
    """Seals the open span if it holds pictures; the newest sealed span (0: none yet)."""
    span = open_span(root)
    if pictures(root, span):
        with tf.io.gfile.GFile(os.path.join(span_folder(root, span), COMPLETE), "w") as f:
            f.write("")
    sealed = sealed_spans(root)
    return sealed[-1] if sealed else 0
