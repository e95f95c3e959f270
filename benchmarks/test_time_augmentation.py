"""Test-time augmentation's gain: trained CNNs predicting each digit once, and as it is and rotated by
+-d degrees with the answers averaged (as the export does with `test_time_rotation`), on `eval` and on
`test`.

    .venv/bin/python -m benchmarks.test_time_augmentation --output A [--output B ...] [--degrees 3 6 9 12]
        [--label LABEL]

Reads every CNN of the newest evaluated run under each `--output` (an ensemble's members one by one, as
`benchmarks.ensemble` does), rebuilt in float32 from the weights its Trainer exported; a run exported with
test-time augmentation is measured the same way, since the CNN's weights are what it exported. Inference only.
`eval` is where the number of degrees is chosen; `test` is what is reported. For each number of degrees:
every CNN's accuracy, and over all CNNs the mean gain and how many gained and lost. A run of several
CNNs also gets their average, predicted each way. Recorded under the topic "accuracy" as "test-time
augmentation": the gains over all CNNs (every CNN's accuracy is printed).
"""

import argparse
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import ensemble, report, runs
from models import features
from models.batches import in_batches
from pipeline import configs, mnist


def readings(run_dir: str, pixels: np.ndarray, degrees: Sequence[float]) -> Dict[float, np.ndarray]:
    """Degrees -> the CNN's probabilities for every digit, as an export with that `test_time_rotation`
    predicts them (`models.export.predict_with_tta`; 0: once)."""
    import tensorflow as tf

    from models.export import predict_with_tta
    from models.network import trained_model

    cnn = trained_model(run_dir)
    images = mnist.scaled(pixels.astype(np.float32))
    read = tf.function(lambda batch, d: predict_with_tta(cnn, batch, d), reduce_retracing=True)

    def probabilities(d: float) -> np.ndarray:
        return in_batches(lambda chunk: read(chunk, d), images)

    return {d: probabilities(d) for d in (0.0, *degrees)}


def gains(plain: Sequence[float], augmented: Sequence[float]) -> Dict[str, float]:
    """How test-time augmentation changed accuracy over CNNs: mean gain in points, and how many gained or lost."""
    change = np.asarray(augmented) - np.asarray(plain)
    return {
        "mean_gain_points": round(float(change.mean()) * 100, 3),
        "gained": int((change > 0).sum()),
        "lost": int((change < 0).sum()),
    }


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", action="append", dest="outputs", help="a pipeline output folder; repeatable")
    parser.add_argument("--degrees", type=float, nargs="+", default=[configs.TEST_TIME_ROTATION])
    runs.add_label_flag(parser)
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
    over_all = {
        split: {
            f"{d:g} degrees": gains([c[split][0.0] for c in cnns], [c[split][d] for c in cnns]) for d in args.degrees
        }
        for split in (features.EVAL_SPLIT, features.TEST_SPLIT)
    }
    figures = {"cnns": len(cnns), "over_all_cnns": over_all}
    details = {"each_cnn": cnns, "members_averaged": averaged}
    name = runs.labelled("test-time augmentation", args.label)
    return report.recorded("accuracy", {name: figures}, "benchmarks.test_time_augmentation", argv, details)


if __name__ == "__main__":
    main()
