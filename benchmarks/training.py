"""Training throughput, side by side: the notebook approach against the pipeline Trainer's input pipeline.

    .venv/bin/python -m benchmarks.training [--images 12000] [--rounds 2] [--batch 128]

Both train the same CNN (`models.model.build_model`), same batch size, on the same MNIST training
images, one epoch at a time, alternating in one process so that both see the same machine:
- notebook: `model.fit` on in-memory NumPy arrays through Keras's classic `ImageDataGenerator`
  (rotation 10, zoom 0.1, width and height shift 0.1), as the popular Kaggle notebooks do;
- pipeline: the Trainer's tf.data tail (`models.model.batches`: cache, shuffle, batch, then one fused
  affine augmentation per batch, prefetch), fed the same pixels scaled as Transform scales them.
Each approach first fits a few steps (tracing, allocation), then one timed epoch per round.
"""

import argparse
import json
import os
import platform
import time
from typing import Callable, Dict, List

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.digit_example_gen import readers
from models import features
from models.model import batches, build_model
from pipeline import configs

WARMUP_STEPS = 5


def mnist_train(count: int):
    digits = readers.read_idx(*(os.path.join(configs.DATA_ROOT, f"train-{k}-ubyte.gz") for k in ("images-idx3", "labels-idx1")))
    pairs = [(pixels, label) for _, (_, pixels, label) in zip(range(count), digits)]
    images = np.stack([p for p, _ in pairs]).astype(np.float32)[..., None] / features.MAX_PIXEL
    return images, np.array([label for _, label in pairs], np.int64)


def notebook_data(images: np.ndarray, labels: np.ndarray, batch: int):
    generator = keras.preprocessing.image.ImageDataGenerator(
        rotation_range=10, zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1
    )
    return generator.flow(images, labels, batch_size=batch, shuffle=True, seed=0)


def pipeline_data(images: np.ndarray, labels: np.ndarray, batch: int) -> tf.data.Dataset:
    return batches(tf.data.Dataset.from_tensor_slices((images, labels)), batch, training=True)


def timed_epoch(make_data: Callable, images: np.ndarray, labels: np.ndarray, batch: int) -> float:
    """Images per second over one epoch of a freshly built model, after a short warm-up fit."""
    model = build_model(learning_rate=1e-3)
    data = make_data(images, labels, batch)
    model.fit(data, epochs=1, steps_per_epoch=WARMUP_STEPS, verbose=0)
    steps = len(images) // batch
    data = make_data(images, labels, batch)
    started = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=12_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    images, labels = mnist_train(args.images)
    runs: Dict[str, List[float]] = {"notebook": [], "pipeline": []}
    for round_number in range(args.rounds):
        for name, make_data in (("notebook", notebook_data), ("pipeline", pipeline_data)):
            runs[name].append(round(timed_epoch(make_data, images, labels, args.batch), 1))
            print(f"round {round_number + 1}: {name} {runs[name][-1]} images/s", flush=True)
    ratios = [round(p / n, 2) for p, n in zip(runs["pipeline"], runs["notebook"])]
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "images_per_epoch": args.images, "batch": args.batch, "images_per_s": runs,
        "median_images_per_s": {name: float(np.median(values)) for name, values in runs.items()},
        "pipeline_over_notebook": ratios, "median_ratio": float(np.median(ratios)),
    }, indent=2))


if __name__ == "__main__":
    main()
