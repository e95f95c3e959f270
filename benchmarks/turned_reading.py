"""Trained CNNs reading each digit once, and as it is and turned by +-d degrees (test-time augmentation,
as the export does with `test_time_rotation`), on `eval` and on `test`.

    .venv/bin/python -m benchmarks.turned_reading --output A [--output B ...] [--degrees 3 6 9 12]

Reads every CNN of the newest evaluated run under each `--output` (an ensemble's members one by one, as
`benchmarks.ensemble` does), rebuilt in float32 from the weights its Trainer exported; a run exported with
a turned reading is measured the same way, since the CNN's weights are what it exported. Inference only.
`eval` is where the number of degrees is chosen; `test` is what is reported. For each number of degrees:
every CNN's accuracy, and over all CNNs the mean gain and how many gained and lost. A run of several
CNNs also gets their average, read each way.
"""

import argparse
import json
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import ensemble, host, mnist, runs
from models import features
from models.batches import in_batches
from pipeline import configs


def readings(run_dir: str, pixels: np.ndarray, degrees: Sequence[float]) -> Dict[float, np.ndarray]:
    """Degrees -> the CNN's probabilities for every digit, read as an export with that `test_time_rotation`
    reads it (`models.export.turned_reading`; 0: once)."""
    import tensorflow as tf

    from models.export import turned_reading
    from models.model import trained_model

    cnn = trained_model(run_dir)
    images = mnist.scaled(pixels.astype(np.float32))
    read = tf.function(lambda batch, d: turned_reading(cnn, batch, d), reduce_retracing=True)

    def probabilities(d: float) -> np.ndarray:
        return in_batches(lambda chunk: read(chunk, d), images)

    return {d: probabilities(d) for d in (0.0, *degrees)}


def gains(plain: Sequence[float], turned: Sequence[float]) -> Dict[str, float]:
    """How reading turned changed accuracy over CNNs: mean gain in points, and how many gained or lost."""
    change = np.asarray(turned) - np.asarray(plain)
    return {
        "mean_gain_points": round(float(change.mean()) * 100, 3),
        "gained": int((change > 0).sum()),
        "lost": int((change < 0).sum()),
    }


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", action="append", dest="outputs", help="a pipeline output folder; repeatable")
    parser.add_argument("--degrees", type=float, nargs="+", default=[configs.TEST_TIME_ROTATION])
    args = parser.parse_args(argv)
    outputs = args.outputs or [configs.OUTPUT_ROOT]
    choices = [0.0, *args.degrees]
    cnns, averaged = [], []
    for output in outputs:
        run = runs.evaluated_run(output)
        splits = runs.eval_and_test(run)
        members = ensemble.member_dirs(run.trainer_logs)
        seen = {split: [readings(m, d.pixels, args.degrees) for m in members] for split, d in splits.items()}
        for index, logs in enumerate(members):
            scores = {s: {d: ensemble.accuracy(seen[s][index][d], splits[s].labels) for d in choices} for s in seen}
            cnns.append({"output": output, "logs": logs, **scores})
            print(json.dumps(cnns[-1]), flush=True)
        if len(members) > 1:
            averaged.append(
                {
                    "output": output,
                    **{
                        s: {
                            d: ensemble.accuracy(np.mean([p[d] for p in seen[s]], axis=0), splits[s].labels)
                            for d in choices
                        }
                        for s in seen
                    },
                }
            )
    return host.reported(
        {
            "cnns": cnns,
            "over_all_cnns": {
                split: {d: gains([c[split][0.0] for c in cnns], [c[split][d] for c in cnns]) for d in args.degrees}
                for split in (features.EVAL_SPLIT, features.TEST_SPLIT)
            },
            "members_averaged": averaged,
        }
    )


if __name__ == "__main__":
    main()
