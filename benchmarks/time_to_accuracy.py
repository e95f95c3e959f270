"""Time to a test accuracy (default 99.5%): the notebook approach against the pipeline Trainer's.

    .venv/bin/python -m benchmarks.time_to_accuracy [--target 0.995] [--max-epochs 15] [--variants ...]

Both train the same CNN with the Trainer's callbacks (ReduceLROnPlateau on validation accuracy,
early stopping, best checkpoint) and the `standard` profile's batch size and learning rate, on the
60,000 MNIST training digits less every 12th, which is held out for validation as the pipeline's
`eval` split is. They differ only in how batches are made: `notebook` is `model.fit` on NumPy arrays
through Keras's `ImageDataGenerator`; `pipeline` is the Trainer's tf.data tail (`models.model.batches`).
Each runs in its own process and the two take turns, one epoch each, so they share the machine's good
and bad moments. After every epoch the 10,000 test digits are scored, to stop the clock, never to
choose anything; the training clock (epochs, validation included) stops when the target is reached.
"""

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from benchmarks import mnist, training, workers
from pipeline import configs

VARIANTS = ("notebook", "pipeline")
EVAL_EVERY = configs.SPLIT_BUCKETS.total
"""Every 12th training digit is held out for validation, the share the pipeline's `eval` split gets."""
GO = "go"
DONE = "done"


def _worker(variant: str, data: Dict[str, np.ndarray], max_epochs: int, target: float, seed: int, connection) -> None:
    """Trains one variant for up to `max_epochs`, one epoch per GO, answering each with that epoch's
    record, and DONE once training has ended (target reached, early stopping or the last epoch)."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    import tf_keras

    from models.config import resolve_precision
    from models.model import batches, build_model, callbacks

    tf.random.set_seed(seed)
    config = dataclasses.replace(configs.PROFILES[configs.DEFAULT_PROFILE].trainer, seed=seed, epochs=max_epochs)
    # The notebooks train in float32; the pipeline as its Trainer is configured on this machine.
    model = build_model(
        config.learning_rate, "float32" if variant == "notebook" else resolve_precision(config.precision)
    )
    train, validation = (data["train_images"], data["train_labels"]), (data["eval_images"], data["eval_labels"])
    if variant == "notebook":
        train_data = training.notebook_batches(*train, config.batch_size, seed)
        validation_data = validation
    else:
        train_data = batches(tf.data.Dataset.from_tensor_slices(train), config.batch_size, training=True, seed=seed)
        validation_data = batches(tf.data.Dataset.from_tensor_slices(validation), config.batch_size, training=False)

    class Turns(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            connection.recv()
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            predicted = np.argmax(self.model.predict(data["test_images"], batch_size=500, verbose=0), axis=1)
            accuracy = float((predicted == data["test_labels"]).mean())
            connection.send(
                {
                    "epoch": epoch + 1,
                    "seconds": round(seconds, 1),
                    "test_accuracy": accuracy,
                    "val_accuracy": round(float(logs["val_accuracy"]), 4),
                }
            )
            if accuracy >= target:
                self.model.stop_training = True

    connection.send(workers.READY)
    with tempfile.TemporaryDirectory() as run_dir:
        model.fit(
            train_data,
            validation_data=validation_data,
            epochs=config.epochs,
            callbacks=callbacks(config, run_dir) + [Turns()],
            verbose=0,
        )
    if connection.recv() == GO:
        connection.send(DONE)


def mnist_splits() -> Dict[str, np.ndarray]:
    images, labels = mnist.load(mnist.TRAIN)
    held_out = np.arange(len(images)) % EVAL_EVERY == 0
    test_images, test_labels = mnist.load(mnist.TEST)
    return {
        "train_images": mnist.scaled(images[~held_out]),
        "train_labels": labels[~held_out],
        "eval_images": mnist.scaled(images[held_out]),
        "eval_labels": labels[held_out],
        "test_images": mnist.scaled(test_images),
        "test_labels": test_labels,
    }


def race(variants: List[str], max_epochs: int, target: float, seed: int) -> Dict[str, List[Dict]]:
    """Each variant's epoch records, variants taking turns until every one has finished."""
    running = workers.start(_worker, variants, mnist_splits(), max_epochs, target, seed)
    epochs: Dict[str, List[Dict]] = {variant: [] for variant in variants}
    active = list(variants)
    try:
        while active:
            for variant in list(active):
                connection = running[variant][1]
                connection.send(GO)
                record = connection.recv()
                if record == DONE:
                    active.remove(variant)
                    continue
                record["cumulative_seconds"] = round(sum(e["seconds"] for e in epochs[variant]) + record["seconds"], 1)
                epochs[variant].append(record)
                print(f"{variant} epoch {record['epoch']}: {json.dumps(record)}", flush=True)
    finally:
        workers.stop(running)
    return epochs


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.995)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args(argv)
    epochs = race(args.variants, args.max_epochs, args.target, args.seed)
    reached = {
        variant: next((e for e in records if e["test_accuracy"] >= args.target), None)
        for variant, records in epochs.items()
    }
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "target": args.target,
        "seed": args.seed,
        "epochs": epochs,
        "seconds_to_target": {v: r and r["cumulative_seconds"] for v, r in reached.items()},
        "epochs_to_target": {v: r and r["epoch"] for v, r in reached.items()},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
