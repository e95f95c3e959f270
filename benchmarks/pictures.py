"""Accuracy on pictures as people make them: the MNIST test digits rendered as pictures that fill their
frame (as scans are), and as small digits off-centre on a larger page (dark ink on white paper, as
drawn or photographed), read through the model's `predict_image_bytes` signature, against the same
model's accuracy on the raw pixels.

    .venv/bin/python -m benchmarks.pictures [--output output] [--label LABEL] [--digits 10000]

The model is the newest pushed one under `--output`. Every picture is a PNG made from a test digit with
PIL (bilinear resampling): "filling_frame" cuts the digit to its ink and scales it so that its longer side
is 100 px (a non-square picture); "small_on_page" scales the whole 28x28 digit to 40 px and pastes it at a
random place (seeded) on a 224x224 white page, inverted to dark ink. Recorded under the topic
"pictures" as "predict_image_bytes": the accuracy on raw pixels and on each rendering.
"""

import argparse
import io
import json
import time
from typing import Callable, Dict, List, Optional

import numpy as np
from PIL import Image

from benchmarks import report, runs
from models import features
from models.batches import in_batches
from pipeline import mnist

BATCH = 250
FILL_SIDE = 100
PAGE, SMALL = 224, 40


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def filling_the_frame(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    ink = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = FILL_SIDE / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    return _png(np.array(Image.fromarray(ink.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)))


def small_off_centre(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    small = np.array(Image.fromarray(digit.astype(np.uint8)).resize((SMALL, SMALL), Image.Resampling.BILINEAR))
    page = np.zeros((PAGE, PAGE), np.uint8)
    top, left = rng.integers(0, PAGE - SMALL, size=2)
    page[top : top + SMALL, left : left + SMALL] = small
    return _png(255 - page)


RENDERINGS: Dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "filling_frame": filling_the_frame,
    "small_on_page": small_off_centre,
}


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    runs.add_output_flag(parser)
    runs.add_label_flag(parser)
    parser.add_argument("--digits", type=int, default=10_000, help="the first N MNIST test digits")
    args = parser.parse_args(argv)
    import tensorflow as tf

    model = runs.pushed_model(args.output)
    signatures = tf.saved_model.load(model).signatures
    pixels, labels = mnist.load(mnist.TEST, args.digits)

    def read(signature: str, name: str, values: List) -> np.ndarray:
        return in_batches(
            lambda chunk: signatures[signature](**{name: chunk})[features.DIGIT_OUTPUT], values, BATCH, None
        )

    started = time.perf_counter()
    raw = float((read(features.IMAGES_SIGNATURE, features.IMAGES_INPUT, list(pixels)) == labels).mean())
    results: Dict = {"raw_pixels": {"accuracy": raw}}
    for name, render in RENDERINGS.items():
        rng = np.random.default_rng(0)
        pictures = [render(digit, rng) for digit in pixels]
        read_digits = read(features.IMAGE_BYTES_SIGNATURE, features.IMAGE_BYTES_INPUT, pictures)
        accuracy = float((read_digits == labels).mean())
        results[name] = {
            "accuracy": accuracy,
            "points_below_raw": round(100 * (raw - accuracy), 2),
            "no_digit_found": int((read_digits == features.NO_DIGIT).sum()),
        }
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    figures = {f"{name}_accuracy": result["accuracy"] for name, result in results.items()}
    details = {"model": model, "digits": len(labels), "seconds": round(time.perf_counter() - started, 1), **results}
    name = runs.labelled("predict_image_bytes", args.label)
    return report.recorded("pictures", {name: figures}, "benchmarks.pictures", argv, details)


if __name__ == "__main__":
    main()
