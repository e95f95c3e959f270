"""A profile's pipeline run from scratch: its test accuracy and wall time, and the size of the model it
pushed.

    .venv/bin/python -m benchmarks.profile [--profile standard] [--seed 42] [--output DIR]

Runs the whole local pipeline as `digits run --profile P --output DIR` does, without its cache, into
`--output` (default: a new temporary folder, so that nothing earlier is reused or resolved as the
served baseline), then reads the run from ML Metadata. Two records:
- "accuracy", named after the profile: the export's test accuracy (TFMA, on all of `test`), whether it
  was blessed and pushed, the run's wall time and the Trainer's;
- "size", "SavedModel" (of the `standard` profile; another's is named after it too): the pushed
  model's megabytes on disk (signatures, Transform graph and weights), its variables' megabytes and how
  many numbers they hold.
Seeds are runs of the same measurement: their spread is the seed-to-seed noise.
"""

import argparse
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

from benchmarks import report
from cli.logs import setup_logging
from pipeline import configs, local_runner, summary


def folder_bytes(path: str) -> int:
    """Every file's size under `path`, as `du -sb` adds them up."""
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def size_figures(saved_model: str) -> Dict[str, float]:
    """The SavedModel's megabytes, its variables' megabytes and how many numbers its variables hold."""
    import numpy as np
    import tensorflow as tf

    variables = os.path.join(saved_model, "variables")
    shapes = tf.train.load_checkpoint(os.path.join(variables, "variables")).get_variable_to_shape_map()
    return {
        "saved_model_mb": round(folder_bytes(saved_model) / 1e6, 2),
        "variables_mb": round(folder_bytes(variables) / 1e6, 2),
        "weights": int(sum(np.prod(shape) for key, shape in shapes.items() if not key.startswith("_"))),
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--profile", choices=sorted(configs.PROFILES), default=configs.DEFAULT_PROFILE)
    parser.add_argument("--seed", type=int, default=None, help="the Trainer's seed (default: the profile's)")
    parser.add_argument("--output", default=None, help="the pipeline output folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    output = args.output or tempfile.mkdtemp(prefix=f"digits-{args.profile}-")
    settings = configs.settings(args.profile, seed=args.seed)
    timer = setup_logging(False)
    started = time.perf_counter()
    local_runner.run(settings, output_root=output, enable_cache=False)
    seconds = time.perf_counter() - started
    run = summary.latest_run(configs.metadata_path(output, settings.model_name))
    trainer = timer.seconds.get("Trainer")
    accuracy = {
        "test_accuracy": run.accuracy,
        "wall_s": round(seconds, 1),
        "trainer_s": None if trainer is None else round(trainer, 1),
        "blessed": run.blessed,
        "pushed": run.pushed,
    }
    details = {"output": output, "run": run.run_id, "pushed_to": run.pushed_to}
    note = f"seed {settings.trainer.seed}"
    result = report.recorded("accuracy", {args.profile: accuracy}, "benchmarks.profile", argv, details, note)
    if run.pushed_to:
        name = "SavedModel" if args.profile == configs.DEFAULT_PROFILE else f"SavedModel, {args.profile}"
        sizes = {name: size_figures(run.pushed_to)}
        result["size"] = report.recorded("size", sizes, "benchmarks.profile", argv, details, note)
    return result


if __name__ == "__main__":
    main()
