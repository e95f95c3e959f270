"""Pipeline overhead: the wall time of every component but the Trainer, by data size and Beam mode.

    .venv/bin/python -m benchmarks.overhead [--sizes 7000 70000] [--modes in_memory multi_processing] [--rounds 1]

Each run is the whole pipeline on a fresh output folder (no cache) with the Trainer cut to one step,
so what is timed is ingestion, statistics, validation, Transform, the Evaluator on the whole `test`
split and the Pusher. A size of N images is the first 6/7 N training and 1/7 N test images of the
bundled MNIST (7,000: 6,000 + 1,000); 70,000 is all of it. Beam runs on the DirectRunner either in
memory with one worker or in multi-processing mode with two. Runs alternate (sizes x modes, per round)
so that all of them see the same machine. Component times are those `digits run` prints (from
LocalDagRunner's log lines).
"""

import argparse
import dataclasses
import json
import tempfile
import time
from typing import Dict, List, Optional

from benchmarks import host
from cli.logs import ComponentTimer, setup_logging
from models.config import TrainerConfig
from pipeline import configs, local_runner

MNIST_SIZE = 70_000
MODE_ARGS = {
    "in_memory": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}
TRAINER = "Trainer"


def overhead_settings(images: int, mode: str) -> configs.Settings:
    """All images (or the first N, in MNIST's 6:1 train/test proportion), one training step, no bar."""
    full = images >= MNIST_SIZE
    profile = configs.Profile(
        f"overhead{images}",
        min_accuracy=0.0,
        trainer=TrainerConfig(epochs=1, steps_per_epoch=1),
        train_limit=None if full else images * 6 // 7,
        test_limit=None if full else images // 7,
    )
    return dataclasses.replace(
        configs.settings(beam_arg=MODE_ARGS[mode]),
        profile=profile,
        trainer=profile.trainer,
        min_accuracy=profile.min_accuracy,
    )


def timed_run(images: int, mode: str, work_dir: str, timer: ComponentTimer) -> Dict[str, float]:
    """Component name -> seconds for one uncached run, as `digits run` reports them, plus the sum of
    all but the Trainer, and the wall time of the whole run."""
    output = tempfile.mkdtemp(prefix=f"{images}-{mode}-", dir=work_dir)
    timer.seconds.clear()
    started = time.perf_counter()
    local_runner.run(overhead_settings(images, mode), output_root=output, enable_cache=False)
    wall = time.perf_counter() - started
    seconds = {name: round(s, 1) for name, s in timer.seconds.items()}
    others = sum(s for name, s in seconds.items() if name != TRAINER)
    return {**seconds, "total_without_trainer": round(others, 1), "wall": round(wall, 1)}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[7_000, MNIST_SIZE])
    parser.add_argument("--modes", nargs="+", choices=sorted(MODE_ARGS), default=list(MODE_ARGS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--work-dir", default=None, help="where the runs write (default: a temporary folder)")
    args = parser.parse_args(argv)
    timer = setup_logging(verbose=False)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="digits-overhead-")
    results: Dict[str, List[Dict[str, float]]] = {}
    for round_number in range(args.rounds):
        for images in args.sizes:
            for mode in args.modes:
                key = f"{images} images, {mode}"
                results.setdefault(key, []).append(timed_run(images, mode, work_dir, timer))
                print(f"round {round_number + 1}: {key}: {json.dumps(results[key][-1])}", flush=True)
    host.reported({"runs": results})


if __name__ == "__main__":
    main()
