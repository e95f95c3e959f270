"""Warm start against training from scratch, on new data for a served model.

    .venv/bin/python -m benchmarks.warm_start [--old 30000] [--work-dir DIR] [--seed 42]

1. The `standard` profile trains on "old" data, the first `--old` training digits of the bundled MNIST
   (with all 10,000 test digits), and pushes version 1.
2. New data arrives, the whole training set: the `finetune` profile (3 epochs from the served model's
   weights, through the same gates) runs in the same pipeline and competes with version 1.
3. The `standard` profile on the same new data, from scratch, in a pipeline of its own.

Each run's test accuracy (TFMA), whether it was pushed, its Trainer and pipeline wall times, printed;
recorded under the topic "accuracy" as "finetune": the fine-tune's test accuracy and wall time beside
those of training from scratch. The test split is only scored, never chosen on.
"""

import argparse
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

from benchmarks import report
from cli.logs import ComponentTimer, setup_logging
from pipeline import configs, local_runner, mnist, summary

OLD = 30_000
"""The first model's training digits by default: half of MNIST's."""


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
        "trainer_seconds": round(timer.seconds["Trainer"], 1) if "Trainer" in timer.seconds else None,
        "pipeline_seconds": round(time.perf_counter() - started, 1),
        "epochs": settings.trainer.epochs,
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=int, default=OLD, help="training digits of the first model")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    timer = setup_logging(False)
    work = args.work_dir or tempfile.mkdtemp(prefix="warm-start-")
    served = os.path.join(work, "served")
    old = old_data(os.path.join(work, "old"), args.old)
    first = timed(configs.settings("standard", data_root=old, seed=args.seed), served, timer)
    finetune = timed(configs.settings("finetune", seed=args.seed), served, timer)
    scratch = timed(configs.settings("standard", seed=args.seed), os.path.join(work, "scratch"), timer)
    figures = {
        "test_accuracy": finetune["test_accuracy"],
        "wall_s": finetune["pipeline_seconds"],
        "from_scratch_test_accuracy": scratch["test_accuracy"],
        "from_scratch_wall_s": scratch["pipeline_seconds"],
    }
    name = "finetune" if args.old == OLD else f"finetune after {args.old:,} digits"
    details = {
        "first_model_on_old_data": first,
        "finetune_on_new_data": finetune,
        "from_scratch_on_new_data": scratch,
        "work_dir": work,
    }
    return report.recorded("accuracy", {name: figures}, "benchmarks.warm_start", argv, details)


if __name__ == "__main__":
    main()
