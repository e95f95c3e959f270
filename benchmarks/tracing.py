"""The CNN's first training step with AutoGraph rewriting tf_keras (TensorFlow 2.16 as installed), and
without it (what `models.tracing` makes every training and export do).

    .venv/bin/python -m benchmarks.tracing [--rounds 3] [--precisions mixed_bfloat16 float32]

The first call of Keras's train function traces it (twice: the first trace creates the optimizer's
variables), and what AutoGraph does in those traces is paid once by every process that trains: each
Trainer run, each ensemble member, each time-to-accuracy variant, each test that trains. AutoGraph's
rules and caches live in the process, so every measurement is a new process: the variants of a round
start together, then take turns timing their first step and a second one (the step itself).
"""

import argparse
import json
import os
import statistics
import time
from typing import Dict, List, Optional

from benchmarks import host, workers
from models.config import DTYPE_POLICIES

AS_INSTALLED = "as-installed"
SKIP_TF_KERAS = "skip-tf-keras"
MODES = (AS_INSTALLED, SKIP_TF_KERAS)
BATCH = 128
RUN = "run"


def _worker(variant: str, connection) -> None:
    """Builds the CNN in one variant (`mode precision`); on RUN, times two training steps and answers
    them with whether AutoGraph left tf_keras's layers as written in this process."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.autograph.core import config as autograph_config
    from tensorflow.python.autograph.impl import conversion

    installed_rules = autograph_config.CONVERSION_RULES
    from models.model import build_model  # adds tf_keras to the rules

    mode, precision = variant.split()
    if mode == AS_INSTALLED:
        autograph_config.CONVERSION_RULES = installed_rules
    model = build_model(1e-3, precision)
    rng = np.random.default_rng(0)
    images = rng.random((2 * BATCH, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 2 * BATCH)
    steps = iter(tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).repeat())
    train = model.make_train_function()
    connection.send(workers.READY)
    if connection.recv() != RUN:
        return
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        train(steps)
        seconds.append(round(time.perf_counter() - started, 3))
    conv = next(layer for layer in model.layers if type(layer).__name__ == "Conv2D")
    connection.send(
        {
            "first_step": seconds[0],
            "second_step": seconds[1],
            "tf_keras_left_as_written": conversion.is_allowlisted(type(conv).call),
        }
    )
    connection.recv()


def measure(precisions: List[str], rounds: int) -> Dict[str, List[Dict]]:
    """Each variant's record in each round."""
    variants = [f"{mode} {precision}" for precision in precisions for mode in MODES]
    records: Dict[str, List[Dict]] = {variant: [] for variant in variants}
    for round_number in range(rounds):
        running = workers.start(_worker, variants)
        try:
            for variant in running:
                records[variant].append(workers.ask(running, variant, RUN))
        finally:
            workers.stop(running)
        print(
            f"round {round_number + 1}: " + json.dumps({v: r[-1]["first_step"] for v, r in records.items()}), flush=True
        )
    return records


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", choices=DTYPE_POLICIES, default=list(reversed(DTYPE_POLICIES)))
    args = parser.parse_args(argv)
    records = measure(args.precisions, args.rounds)
    return host.reported(
        {
            "records": records,
            "median_first_step_seconds": {
                v: statistics.median(r["first_step"] for r in rs) for v, rs in records.items()
            },
            "median_second_step_seconds": {
                v: statistics.median(r["second_step"] for r in rs) for v, rs in records.items()
            },
        }
    )


if __name__ == "__main__":
    main()
