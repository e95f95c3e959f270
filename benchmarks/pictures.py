"""Accuracy on pictures as people make them: the MNIST test digits rendered as pictures that fill their
frame (as scans are), and as small digits off-centre on a larger page (dark ink on white paper, as
drawn or photographed), read through the model's `predict_image_bytes` signature, against the same
model's accuracy on the raw pixels.

    .venv/bin/python -m benchmarks.pictures [--output output] [--digits 10000]

The model is the newest pushed one under `--output`. Every picture is a PNG made from a test digit with
PIL (bilinear resampling): "fill" cuts the digit to its ink and scales it so that its longer side is 100
px (a non-square picture); "small, off-centre" scales the whole 28x28 digit to 40 px and pastes it at a
random place (seeded) on a 224x224 white page, inverted to dark ink.
"""

import argparse
import io
import json
import time
from typing import Callable, Dict, List, Optional

import numpy as np
from PIL import Image

from benchmarks import host, mnist, runs
from models import features
from models.batches import in_batches
from pipeline import configs

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
    "fill the frame": filling_the_frame,
    "small, off-centre, dark on white": small_off_centre,
}


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--output", default=configs.OUTPUT_ROOT, help="a pipeline run's --output folder")
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
    results: Dict = {"raw pixels (predict_images)": {"accuracy": raw}}
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
    return host.reported(
        {
            "model": model,
            "digits": len(labels),
            "seconds": round(time.perf_counter() - started, 1),
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
