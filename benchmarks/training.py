"""Training throughput, side by side: the notebook approach against the pipeline Trainer's, and variants.

    .venv/bin/python -m benchmarks.training [--images 8000] [--rounds 8] [--steps 20] [--variants ...]

Every variant trains the same CNN (`models.network.build_model`) with batch 128 on the same MNIST training
images:
- notebook: `model.fit` on in-memory NumPy arrays through Keras's classic `ImageDataGenerator`
  (rotation 10, zoom 0.1, width and height shift 0.1), as the popular Kaggle notebooks do, in float32;
  `notebook-bf16` the same in bfloat16 mixed precision, to tell the precision's gain from the pipeline's;
- pipeline: the Trainer's tf.data tail (`models.inputs.batches`: cache, shuffle, batch, one fused affine
  augmentation per batch in a parallel map, prefetch), fed the pixels scaled as Transform scales them;
- pipeline variants, all float32 but one: augmentation per image before batching (not fused), XLA
  (`jit_compile`), bfloat16 mixed precision (`pipeline-bf16`: the Trainer's default since), Keras 3
  instead of tf_keras, one inter-op thread.
Each variant lives in its own process (thread settings are fixed when TensorFlow starts), built and
warmed up once. Then, round after round, each process in turn trains `--steps` steps while the others
wait, so all variants share the machine's good and bad moments; the figure is the median over rounds
of each variant's speed relative to `notebook` in the same round. The clock covers the steps (from the
start to the end of `fit`'s epoch), not the making and end of each request's input iterator.
Recorded under the topic "training", named after the variants measured (`NAMES`): each variant's median
images per second and median ratio to `notebook`; the per-round speeds are printed.
"""

import argparse
import os
import time
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from benchmarks import report, workers
from pipeline import mnist

BATCH = 128
WARMUP_STEPS = 5
VARIANTS = (
    "notebook",
    "notebook-bf16",
    "pipeline",
    "pipeline-unfused",
    "pipeline-xla",
    "pipeline-bf16",
    "pipeline-keras3",
    "pipeline-1-inter-op-thread",
)
BASELINE = "notebook"
NAMES = {
    ("notebook", "notebook-bf16", "pipeline", "pipeline-bf16"): "notebook and Trainer input, float32 and bfloat16",
    VARIANTS: "every variant",
}
"""The records' names of the usual variant sets (in the order measured); another set is named by its variants."""


def notebook_batches(images: np.ndarray, labels: np.ndarray, batch: int, seed: int = 0):
    """The notebooks' input: Keras's classic `ImageDataGenerator` on in-memory arrays, endless."""
    import tf_keras

    generator = tf_keras.preprocessing.image.ImageDataGenerator(
        rotation_range=10, zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1
    )
    return generator.flow(images, labels, batch_size=batch, shuffle=True, seed=seed)


def _model_and_data(variant: str, images: np.ndarray, labels: np.ndarray):
    """The compiled model and an endless batch source for one variant."""
    import tensorflow as tf

    from models.inputs import augment, batches
    from models.network import build_model

    if variant.startswith(BASELINE):
        precision = "mixed_bfloat16" if variant.endswith("bf16") else "float32"
        return build_model(1e-3, precision), notebook_batches(images, labels, BATCH)
    examples = tf.data.Dataset.from_tensor_slices((images, labels))

    def _augment_one(image, label):
        return augment(image[None])[0], label

    if variant == "pipeline-unfused":
        data = (
            examples.cache()
            .shuffle(len(images))
            .repeat()
            .map(_augment_one, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(BATCH)
            .prefetch(tf.data.AUTOTUNE)
        )
    else:
        data = batches(examples, BATCH, training=True).repeat()
    model = build_model(1e-3, "mixed_bfloat16" if variant == "pipeline-bf16" else "float32", api=_keras_api(variant))
    if variant == "pipeline-xla":
        model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], jit_compile=True)
    return model, data


def _keras_api(variant: str) -> ModuleType:
    """The Keras a variant trains with: Keras 3 for `pipeline-keras3`, else tf_keras (the Trainer's)."""
    if variant == "pipeline-keras3":
        import keras

        return keras
    import tf_keras

    return tf_keras


def _step_timer(variant: str) -> Tuple[Any, Dict[str, float]]:
    """A callback timing each `fit` epoch's steps, and where it writes the seconds. Not the making of
    the epoch's input iterator nor its end, where tf.data's autotuning can hold `fit` for up to a minute:
    `fit` makes an iterator per request here, the Trainer one per training."""
    times: Dict[str, float] = {}
    timer = _keras_api(variant).callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: times.update(started=time.perf_counter()),
        on_epoch_end=lambda epoch, logs: times.update(seconds=time.perf_counter() - times["started"]),
    )
    return timer, times


def _worker(variant: str, images: np.ndarray, labels: np.ndarray, steps: int, connection) -> None:
    """Builds and warms up one variant, then trains `steps` steps per request and answers the seconds."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf

    if variant == "pipeline-1-inter-op-thread":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    model, data = _model_and_data(variant, images, labels)
    timer, times = _step_timer(variant)
    model.fit(data, epochs=1, steps_per_epoch=WARMUP_STEPS, verbose=0)
    connection.send(workers.READY)
    while connection.recv() != workers.STOP:
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
        connection.send(times["seconds"])


def measure(variants: List[str], images: int, rounds: int, steps: int) -> Dict[str, List[float]]:
    """Images per second of each variant in each round, variants taking turns."""
    pixels, labels = mnist.load(mnist.TRAIN, images)
    running = workers.start(_worker, variants, mnist.scaled(pixels), labels, steps)
    speeds: Dict[str, List[float]] = {variant: [] for variant in variants}
    try:
        for round_number in range(rounds):
            for variant in running:
                speeds[variant].append(round(steps * BATCH / workers.ask(running, variant, "run"), 1))
            print(f"round {round_number + 1}: " + ", ".join(f"{v} {s[-1]}" for v, s in speeds.items()), flush=True)
    finally:
        workers.stop(running)
    return speeds


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8_000, help="training images held in memory")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="training steps per variant per round")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args(argv)
    variants = [BASELINE] + [v for v in args.variants if v != BASELINE]
    speeds = measure(variants, args.images, args.rounds, args.steps)
    ratios = {v: [round(s / b, 3) for s, b in zip(speeds[v], speeds[BASELINE])] for v in variants}
    figures: Dict[str, float] = {}
    for variant in variants:
        key = variant.replace("-", "_")
        figures[f"{key}_images_per_s"] = float(np.median(speeds[variant]))
        if variant != BASELINE:
            figures[f"{key}_ratio"] = round(float(np.median(ratios[variant])), 3)
    details = {
        "images": args.images,
        "batch": BATCH,
        "steps_per_round": args.steps,
        "images_per_s": speeds,
        "ratio_to_notebook": ratios,
        "median_ratio_to_notebook": {v: float(np.median(r)) for v, r in ratios.items()},
    }
    name = NAMES.get(tuple(variants), ", ".join(variants))
    return report.recorded("training", {name: figures}, "benchmarks.training", argv, details)


if __name__ == "__main__":
    main()
