"""Time to a test accuracy (default 99.5%): the notebook approach against the pipeline Trainer's.

    .venv/bin/python -m benchmarks.time_to_accuracy [--target 0.995] [--max-epochs 15] [--epochs 10]
        [--seed 42] [--variants ...]

    .venv/bin/python -m benchmarks.time_to_accuracy --target 1 --variants pipeline pipeline:batch_size=64

The notebook trains as the popular Kaggle notebooks do: `model.fit` on NumPy arrays through Keras's
`ImageDataGenerator`, Adam at 1e-3 halved when validation accuracy stalls, in float32
(`notebook-bf16`: the same in bfloat16, to tell what the precision gains from what the pipeline does).
`pipeline` trains as the `standard` profile's Trainer does: its tf.data tail (`models.inputs.batches`),
its augmentation, learning-rate schedule (stretched over `--epochs`) and precision;
`pipeline:FIELD=VALUE,...` is the same with those `TrainerConfig` fields changed (values in JSON), to
measure a lever side by side with the Trainer as it is. All use the Trainer's callbacks (early
stopping and ReduceLROnPlateau with plateau schedules) and the same CNN, on the 60,000
MNIST training digits less a random 1 in 12, held out for validation as the pipeline's `eval` split is.
Each runs in its own process and the two take turns, one epoch each, so they share the machine's good
and bad moments. After every epoch the 10,000 test digits are scored, to stop the clock, never to
choose anything; the training clock (epochs, validation included) stops when the target is reached
(`--target 1` never stops it: every epoch runs, and each variant ends with the `eval` and test accuracy
of the weights the Trainer would export: the last epoch's, or with plateau halving the best `eval` epoch's).
Recorded under the topic "time_to_accuracy", a record per variant named after the target and the
variant ("99.5% test accuracy: the Trainer"): the training seconds and epochs to the target (none if
not reached) and the exported weights' test accuracy. Seeds are runs of the same measurement. Every
epoch's record is printed.
"""

import argparse
import dataclasses
import json
import math
import os
import re
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from benchmarks import report, training, workers
from models.config import TrainerConfig
from pipeline import configs, mnist

NOTEBOOK, NOTEBOOK_BF16, PIPELINE = "notebook", "notebook-bf16", "pipeline"
VARIANTS = (NOTEBOOK, NOTEBOOK_BF16, PIPELINE)
EVAL_EVERY = configs.SPLIT_BUCKETS.total
"""1 in 12 training digits is held out for validation, the share the pipeline's `eval` split gets."""
HELD_OUT_SEED = 0
GO = "go"
DONE = "done"


def pipeline_config(variant: str, epochs: int, seed: int) -> TrainerConfig:
    """The `standard` Trainer's settings with its schedule over `epochs`, and a `pipeline:FIELD=VALUE,...`
    variant's changes; a field that does not exist or a value TrainerConfig refuses is an error."""
    name, _, changes = variant.partition(":")
    if name != PIPELINE:
        raise ValueError(f"{variant!r}: a pipeline variant is {PIPELINE} or {PIPELINE}:FIELD=VALUE,...")
    standard = configs.PROFILES[configs.DEFAULT_PROFILE].trainer
    fields = {field.name for field in dataclasses.fields(TrainerConfig)}
    overrides: Dict[str, Any] = {}
    for change in filter(None, re.split(r",(?=\w+=)", changes)):  # commas inside JSON values stay
        field, equals, value = change.partition("=")
        if field not in fields or not equals:
            raise ValueError(f"{variant!r}: {change!r} is not FIELD=VALUE of a TrainerConfig field")
        overrides[field] = json.loads(value)
    return TrainerConfig.from_custom_config(
        {**standard.as_custom_config(), "seed": seed, "epochs": epochs, **overrides}
    )


def described(variant: str) -> str:
    """A variant as its record names it: "the notebook", "the Trainer", "the Trainer with batch_size=64"."""
    if variant in (NOTEBOOK, NOTEBOOK_BF16):
        return "the notebook" + (" in bfloat16" if variant == NOTEBOOK_BF16 else "")
    changes = variant.partition(":")[2]
    return "the Trainer" + (f" with {changes}" if changes else "")


def variant_name(text: str) -> str:
    """argparse's check of a variant: a notebook's name, or a pipeline variant that `pipeline_config` takes."""
    try:
        if text not in (NOTEBOOK, NOTEBOOK_BF16):
            pipeline_config(text, 1, 0)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def _worker(
    variant: str, data: Dict[str, np.ndarray], epochs: int, max_epochs: int, target: float, seed: int, connection
) -> None:
    """Trains one variant for up to `max_epochs`, one epoch per GO, answering each with that epoch's
    record, and DONE once training has ended (target reached, early stopping or the last epoch)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    import tf_keras

    from models.config import NOTEBOOK_AUGMENTATION, PLATEAU, resolve_precision
    from models.inputs import batches
    from models.network import build_model
    from models.training import callbacks, learning_rate

    tf.random.set_seed(seed)
    notebook = variant in (NOTEBOOK, NOTEBOOK_BF16)
    if notebook:
        config = dataclasses.replace(
            pipeline_config(PIPELINE, max_epochs, seed), schedule=PLATEAU, augmentation=NOTEBOOK_AUGMENTATION
        )
        precision = "mixed_bfloat16" if variant == NOTEBOOK_BF16 else "float32"
    else:  # The schedule spans `epochs`; the race may stop before.
        config = pipeline_config(variant, epochs, seed)
        precision = resolve_precision(config.precision)
    steps = math.ceil(len(data["train_labels"]) / config.batch_size)
    model = build_model(learning_rate(config, steps), precision, deskew=config.deskew)
    train, validation = (data["train_images"], data["train_labels"]), (data["eval_images"], data["eval_labels"])
    if notebook:
        train_data = training.notebook_batches(*train, config.batch_size, seed)
        validation_data = validation
    else:
        train_data = batches(
            tf.data.Dataset.from_tensor_slices(train),
            config.batch_size,
            training=True,
            augmentation=config.augmentation,
            seed=seed,
        )
        validation_data = batches(tf.data.Dataset.from_tensor_slices(validation), config.batch_size, training=False)

    def accuracy(split: str) -> float:
        predicted = np.argmax(model.predict(data[f"{split}_images"], batch_size=500, verbose=0), axis=1)
        return float((predicted == data[f"{split}_labels"]).mean())

    class Turns(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            connection.recv()
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            test = accuracy("test")
            connection.send(
                {
                    "epoch": epoch + 1,
                    "seconds": round(seconds, 1),
                    "test_accuracy": test,
                    "val_accuracy": round(float(logs["val_accuracy"]), 4),
                    "val_loss": round(float(logs["val_loss"]), 4),
                }
            )
            if test >= target:
                self.model.stop_training = True

    connection.send(workers.READY)
    with tempfile.TemporaryDirectory() as run_dir:
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=min(config.epochs, max_epochs),
            callbacks=callbacks(config, run_dir) + [Turns()],
            verbose=0,
        )
    if connection.recv() == GO:  # The weights the Trainer would export (`models.training.callbacks`).
        connection.send({DONE: {"test": accuracy("test"), "eval": accuracy("eval")}})


def mnist_splits() -> Dict[str, np.ndarray]:
    images, labels = mnist.load(mnist.TRAIN)
    # A random sample, as the pipeline's hash partition is: not every 12th digit, because MNIST's
    # training file alternates between writers, and the digits at even positions are the harder ones
    # (a standard CNN misreads 0.3-0.7% of them against 0.04-0.24% at odd positions).
    held_out = np.zeros(len(images), bool)
    held_out[np.random.default_rng(HELD_OUT_SEED).permutation(len(images))[: len(images) // EVAL_EVERY]] = True
    test_images, test_labels = mnist.load(mnist.TEST)
    return {
        "train_images": mnist.scaled(images[~held_out]),
        "train_labels": labels[~held_out],
        "eval_images": mnist.scaled(images[held_out]),
        "eval_labels": labels[held_out],
        "test_images": mnist.scaled(test_images),
        "test_labels": test_labels,
    }


def race(
    variants: List[str], schedule_epochs: int, max_epochs: int, target: float, seed: int
) -> Tuple[Dict[str, List[Dict]], Dict[str, Dict[str, float]]]:
    """Each variant's epoch records, variants taking turns until every one has finished, and the `test`
    and `eval` accuracy of the weights each would export."""
    running = workers.start(_worker, variants, mnist_splits(), schedule_epochs, max_epochs, target, seed)
    epochs: Dict[str, List[Dict]] = {variant: [] for variant in variants}
    exported: Dict[str, Dict[str, float]] = {}
    active = list(variants)
    try:
        while active:
            for variant in list(active):
                record = workers.ask(running, variant, GO)
                if DONE in record:
                    exported[variant] = record[DONE]
                    print(f"{variant} exports weights of accuracy {record[DONE]}", flush=True)
                    active.remove(variant)
                    continue
                record["cumulative_seconds"] = round(sum(e["seconds"] for e in epochs[variant]) + record["seconds"], 1)
                epochs[variant].append(record)
                print(f"{variant} epoch {record['epoch']}: {json.dumps(record)}", flush=True)
    finally:
        workers.stop(running)
    return epochs, exported


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.995)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=10, help="the length of the pipeline's learning-rate schedule")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variants", nargs="+", type=variant_name, default=list(VARIANTS), help=", ".join(VARIANTS))
    args = parser.parse_args(argv)
    epochs, exported = race(args.variants, args.epochs, args.max_epochs, args.target, args.seed)
    reached = {
        variant: next((e for e in records if e["test_accuracy"] >= args.target), None)
        for variant, records in epochs.items()
    }
    measurements = {
        f"{100 * args.target:g}% test accuracy: {described(variant)}": {
            "training_s": r and r["cumulative_seconds"],
            "epochs": r and r["epoch"],
            "exported_test_accuracy": exported.get(variant, {}).get("test"),
        }
        for variant, r in reached.items()
    }
    details = {"seed": args.seed, "pipeline_schedule_epochs": args.epochs, "exported": exported, "epochs": epochs}
    return report.recorded("time_to_accuracy", measurements, "benchmarks.time_to_accuracy", argv, details)


if __name__ == "__main__":
    main()
