"""Knowledge distillation: one CNN of the seed's shape trained on the averaged answers of several.

    .venv/bin/python -m benchmarks.distillation teach --output DIR --seed 43 --learning-rate 0.003 --deskew
    .venv/bin/python -m benchmarks.distillation student --output DIR --seed 1 [--temperature 4] [--hard 0.1]

Hinton et al. (2015): a model trained to match an ensemble's softened answers (softmax at temperature T)
learns which wrong digits each picture resembles, and can come closer to the ensemble than one trained on
the labels alone. `teach` trains one teacher as `full`'s Trainer does (30 epochs of the cosine schedule,
the digits' augmentation with noise, bfloat16 where the CPU has it; `--learning-rate` and `--deskew` as
an ensemble member's) and saves its probabilities on the clean training, `eval` and test digits;
`student` trains `full`'s CNN on every saved teacher's training answers (their log-probabilities
averaged, divided by T, softmaxed), weighted `1 - hard` (times T squared), and the labels weighted
`hard`. The student sees augmented pictures with the teachers' answers to the clean ones. Data as
`benchmarks.time_to_accuracy`'s: the MNIST training digits less a random 1 in 12 held out as `eval`;
the test digits are scored at the end, never to choose.
"""

import argparse
import dataclasses
import json
import math
import os
import time
from typing import Dict, List, Optional

import numpy as np

from benchmarks.time_to_accuracy import mnist_splits
from models.config import TrainerConfig
from pipeline import configs

SPLITS = ("train", "eval", "test")
TEACHER = "teacher"


def tempered(probabilities: List[np.ndarray], temperature: float) -> np.ndarray:
    """softmax(mean log p / T): the teachers' averaged answers, softened."""
    logits = np.mean([np.log(np.clip(p, 1e-12, 1.0)) for p in probabilities], axis=0) / temperature
    soft = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def distillation_loss(temperature: float, hard: float):
    """Keras loss of a softmax model against [soft targets | one-hot label] rows (20 columns)."""
    import tensorflow as tf

    def loss(y_true, y_pred):
        soft_t, hard_t = y_true[:, :10], y_true[:, 10:]
        log_p = tf.math.log(tf.clip_by_value(y_pred, 1e-12, 1.0))
        hard_loss = -tf.reduce_sum(hard_t * log_p, axis=1)
        soft_loss = -tf.reduce_sum(soft_t * tf.nn.log_softmax(log_p / temperature, axis=1), axis=1)
        return hard * hard_loss + (1.0 - hard) * temperature**2 * soft_loss

    return loss


def full_config(seed: int, learning_rate: float, deskew: bool, epochs: Optional[int]) -> TrainerConfig:
    full = configs.PROFILES["full"].trainer
    return dataclasses.replace(
        full, seed=seed, learning_rate=learning_rate, deskew=deskew, epochs=epochs or full.epochs
    )


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(axis=1) == labels).mean())


def train(config: TrainerConfig, data: Dict[str, np.ndarray], targets: np.ndarray, name: str, loss=None):
    """`full`'s Trainer on in-memory digits, `eval` scored after every epoch (printed, one JSON line each)."""
    import tensorflow as tf
    import tf_keras

    from models.config import resolve_precision
    from models.model import batches, build_model, learning_rate

    class Log(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            score = accuracy(self.model.predict(data["eval_images"], batch_size=500, verbose=0), data["eval_labels"])
            record = {"run": name, "epoch": epoch + 1, "seconds": round(seconds, 1), "eval": score}
            print(json.dumps({**record, "loss": round(float(logs["loss"]), 4)}), flush=True)

    tf.random.set_seed(config.seed)
    steps = math.ceil(len(targets) / config.batch_size)
    model = build_model(learning_rate(config, steps), resolve_precision(config.precision), deskew=config.deskew)
    if loss is not None:
        model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate(config, steps)), loss=loss)
    examples = tf.data.Dataset.from_tensor_slices((data["train_images"], targets))
    dataset = batches(examples, config.batch_size, training=True, augmentation=config.augmentation, seed=config.seed)
    model.fit(dataset, epochs=config.epochs, callbacks=[Log()], verbose=0)
    return model


def finish(model, data: Dict[str, np.ndarray], splits, path: str, name: str) -> Dict:
    answers = {
        split: model.predict(data[f"{split}_images"], batch_size=500, verbose=0).astype(np.float32) for split in splits
    }
    np.savez(path, **answers)
    result = {"run": name, **{f"final_{s}": accuracy(answers[s], data[f"{s}_labels"]) for s in ("eval", "test")}}
    print(json.dumps(result), flush=True)
    return result


def teach(args: argparse.Namespace) -> Dict:
    data = mnist_splits()
    config = full_config(args.seed, args.learning_rate, args.deskew, args.epochs)
    name = f"{TEACHER}{args.seed}"
    model = train(config, data, data["train_labels"], name)
    return finish(model, data, SPLITS, os.path.join(args.output, f"{name}.npz"), name)


def student(args: argparse.Namespace) -> Dict:
    data = mnist_splits()
    files = sorted(f for f in os.listdir(args.output) if f.startswith(TEACHER) and f.endswith(".npz"))
    if not files:
        raise SystemExit(f"no teacher's answers in {args.output}: run `teach` first")
    teachers = [np.load(os.path.join(args.output, f)) for f in files]
    for split in ("eval", "test"):
        averaged = np.mean([t[split] for t in teachers], axis=0)
        print(json.dumps({"teachers": files, "split": split, "ensemble": accuracy(averaged, data[f"{split}_labels"])}))
    soft = tempered([t["train"] for t in teachers], args.temperature)
    targets = np.concatenate([soft, np.eye(10, dtype=np.float32)[data["train_labels"]]], axis=1)
    config = full_config(args.seed, configs.COSINE_PEAK_RATE, False, args.epochs)
    name = f"student{args.seed}_T{args.temperature:g}_hard{args.hard:g}"
    model = train(config, data, targets, name, distillation_loss(args.temperature, args.hard))
    return finish(model, data, ("eval", "test"), os.path.join(args.output, f"{name}.npz"), name)


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    stages = parser.add_subparsers(dest="stage", required=True)
    for stage in ("teach", "student"):
        sub = stages.add_parser(stage)
        sub.add_argument("--output", required=True, help="folder of the teachers' answers")
        sub.add_argument("--seed", type=int, required=True)
        sub.add_argument("--epochs", type=int, help="default: `full`'s")
    stages.choices["teach"].add_argument("--learning-rate", type=float, default=configs.COSINE_PEAK_RATE)
    stages.choices["teach"].add_argument("--deskew", action="store_true")
    stages.choices["student"].add_argument("--temperature", type=float, default=4.0)
    stages.choices["student"].add_argument("--hard", type=float, default=0.1, help="the labels' weight")
    args = parser.parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    return (teach if args.stage == "teach" else student)(args)


if __name__ == "__main__":
    main()
