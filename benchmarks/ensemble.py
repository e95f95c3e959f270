"""An `ensemble` run's members, each alone and averaged K at a time, on `eval` and on `test`.

    .venv/bin/python -m benchmarks.ensemble [--output output] [--output other ...] [--label LABEL]

Reads the newest evaluated run under each `--output`: each member's exported checkpoint (the first in
the Trainer's logs folder, the others in `member-N` below it; a single CNN is a member of its own) and
the run's `eval` and `test` splits. Several outputs pool their runs' members, in the order given, to
measure what averaging more CNNs than one run trains would reach.
`eval` is where K is chosen; `test` is what is reported. How alike the members' mistakes are
(`shared_mistakes`) says how much averaging them can fix. The members are rebuilt in float32, so their
probabilities differ from the bfloat16 export's in the fourth decimal; the export's own test accuracy
(TFMA's, on all of `test`) is the run's summary figure. Recorded under the topic "accuracy" as
"ensemble members averaged": every K's accuracy, and how alike the members' mistakes are.
"""

import argparse
import glob
import os
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import report, runs
from pipeline import configs, mnist
from reports.run_report import Digits

MEMBER_FOLDER = re.compile(r"member-(\d+)$")


def member_dirs(trainer_logs: str) -> List[str]:
    """Every member's logs folder, in seed order (see `models.training.member_dir`)."""
    numbered = {}
    for path in glob.glob(os.path.join(trainer_logs, "member-*")):
        match = MEMBER_FOLDER.search(path)
        if match:
            numbered[int(match.group(1))] = path
    return [trainer_logs] + [numbered[number] for number in sorted(numbered)]


def in_digit_order(digits: Digits) -> Digits:
    """A split's digits sorted by their pixels: each run reads ExampleGen's shards in its own order, so
    pooled runs are compared digit by digit in this one."""
    order = np.lexsort(digits.pixels.reshape(len(digits.pixels), -1).T[::-1])
    return Digits(digits.pixels[order], digits.labels[order])


def sorted_splits(run: runs.EvaluatedRun) -> Dict[str, Digits]:
    """A run's `eval` and `test` splits, each `in_digit_order`."""
    return {split: in_digit_order(digits) for split, digits in runs.eval_and_test(run).items()}


def same_digits(these: Dict[str, Digits], those: Dict[str, Digits]) -> bool:
    return these.keys() == those.keys() and all(
        np.array_equal(these[s].pixels, those[s].pixels) and np.array_equal(these[s].labels, those[s].labels)
        for s in these
    )


def probabilities(run_dir: str, pixels: np.ndarray) -> np.ndarray:
    from models.network import trained_model

    return trained_model(run_dir).predict(mnist.scaled(pixels.astype(np.float32)), batch_size=500, verbose=0)


def misread(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per digit, whether the most probable class is not its label."""
    return np.argmax(probabilities, axis=1) != labels


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return round(float((~misread(probabilities, labels)).mean()), 4)


def shared_mistakes(probabilities: Sequence[np.ndarray], labels: np.ndarray) -> Optional[float]:
    """Of two members' mistakes, the share both make (the digits both misread over the mean of their
    counts), averaged over every pair: 1 when they misread the same digits, 0 when none are shared.
    None for fewer than two members."""
    wrong = [set(np.flatnonzero(misread(p, labels)).tolist()) for p in probabilities]
    pairs = [(a, b) for i, a in enumerate(wrong) for b in wrong[i + 1 :]]
    if not pairs:
        return None
    return round(float(np.mean([2 * len(a & b) / (len(a) + len(b)) if a or b else 1.0 for a, b in pairs])), 4)


def members_misreading(probabilities: Sequence[np.ndarray], labels: np.ndarray) -> List[int]:
    """For the digits the average of all members misreads: how many of them n members misread, for n
    from 0 to every member. Mass at the end means averaging more such members cannot fix them."""
    average_wrong = misread(np.mean(probabilities, axis=0), labels)
    members_wrong = np.sum([misread(p, labels) for p in probabilities], axis=0)
    return np.bincount(members_wrong[average_wrong], minlength=len(probabilities) + 1).tolist()


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--output",
        action="append",
        dest="outputs",
        help="a pipeline output folder; repeat it to pool several runs' members (default: output)",
    )
    runs.add_label_flag(parser)
    args = parser.parse_args(argv)
    outputs = args.outputs or [configs.OUTPUT_ROOT]
    evaluated = [runs.evaluated_run(output) for output in outputs]
    splits = sorted_splits(evaluated[0])
    for output, run in zip(outputs[1:], evaluated[1:]):
        if not same_digits(sorted_splits(run), splits):
            raise SystemExit(
                f"{output}: its eval and test digits are not {outputs[0]}'s; only runs on the same data are pooled"
            )
    members = [member for run in evaluated for member in member_dirs(run.trainer_logs)]
    scores = {split: [probabilities(member, digits.pixels) for member in members] for split, digits in splits.items()}
    averaged = {
        f"first {k}": {s: accuracy(np.mean(scores[s][:k], axis=0), splits[s].labels) for s in splits}
        for k in range(1, len(members) + 1)
    }
    figures = {
        "members": len(members),
        "accuracy": averaged,
        "shared_mistakes": {split: shared_mistakes(scores[split], splits[split].labels) for split in splits},
    }
    details = {
        "runs": [
            {"output": output, "run": run.run_id, "export_test_accuracy": run.accuracy}
            for output, run in zip(outputs, evaluated)
        ],
        "each_member": [
            {"member": i + 1, "logs": logs, **{s: accuracy(scores[s][i], splits[s].labels) for s in splits}}
            for i, logs in enumerate(members)
        ],
        "average_misreads_by_members_misreading": {
            split: members_misreading(scores[split], splits[split].labels) for split in splits
        },
    }
    name = runs.labelled("ensemble members averaged", args.label)
    return report.recorded("accuracy", {name: figures}, "benchmarks.ensemble", argv, details)


if __name__ == "__main__":
    main()
