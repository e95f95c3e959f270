"""Warm start against training from scratch, on new data for a served model.

    .venv/bin/python -m benchmarks.warm_start [--old 30000] [--work-dir DIR] [--seed 42]

1. The `standard` profile trains on "old" data, the first `--old` training digits of the bundled MNIST
   (with all 10,000 test digits), and pushes version 1.
2. New data arrives, the whole training set: the `finetune` profile (3 epochs from the served model's
   weights, through the same gates) runs in the same pipeline and competes with version 1.
3. The `standard` profile on the same new data, from scratch, in a pipeline of its own.

Printed as JSON: each run's test accuracy (TFMA), whether it was pushed, its Trainer and pipeline wall
times. The test split is only scored, never chosen on.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Any, Dict

from benchmarks import mnist
from cli.logs import ComponentTimer, setup_logging
from pipeline import configs, local_runner, summary


def old_data(folder: str, count: int) -> str:
    """The first `count` training digits and every test digit, as IDX files."""
    mnist.write_idx(folder, "train", *mnist.load(mnist.TRAIN, count))
    mnist.write_idx(folder, "t10k", *mnist.load(mnist.TEST))
    return folder


def timed(settings: configs.Settings, output: str, timer: ComponentTimer) -> Dict[str, Any]:
    timer.seconds.clear()
    started = time.perf_counter()
    local_runner.run(settings, output_root=output)
    result = summary.latest_run(configs.metadata_path(output, settings.model_name))
    return {
        "test_accuracy": result.accuracy,
        "pushed": result.pushed,
        "trainer_seconds": round(timer.seconds.get("Trainer", float("nan")), 1),
        "pipeline_seconds": round(time.perf_counter() - started, 1),
        "epochs": settings.trainer.epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=int, default=30_000, help="training digits of the first model")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    timer = setup_logging(False)
    work = args.work_dir or tempfile.mkdtemp(prefix="warm-start-")
    served = os.path.join(work, "served")
    old = old_data(os.path.join(work, "old"), args.old)
    first = timed(configs.settings("standard", data_root=old, seed=args.seed), served, timer)
    finetune = timed(configs.settings("finetune", seed=args.seed), served, timer)
    scratch = timed(configs.settings("standard", seed=args.seed), os.path.join(work, "scratch"), timer)
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "old_training_digits": args.old,
                "first_model_on_old_data": first,
                "finetune_on_new_data": finetune,
                "from_scratch_on_new_data": scratch,
                "work_dir": work,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
