"""How hard MNIST's digits are by their place in the files: a run's CNN on the 60,000 training digits by
position modulo 12 (every 12th digit was the time-to-accuracy benchmark's validation set), and on the
test digits' two halves.

    .venv/bin/python -m benchmarks.positions [--output output]

MNIST's makers drew its digits from two NIST sets of different writers (Census employees and high-school
students) and the files interleave them. The CNN trained on a hash partition of the training file, which
takes digits from every position alike, so differences between positions are the digits' own. It saw
11 in 12 of these training digits, so their scores are high; the comparison between positions is the
figure, not the level. Nothing here chooses a setting.
"""

import argparse
from typing import Dict, List, Optional

import numpy as np

from benchmarks import host, mnist, runs

GROUPS = 12


def error_rates(correct: np.ndarray, groups: int = GROUPS) -> Dict[str, float]:
    """Share of misread digits (in %) at each position modulo `groups`, and at even and odd positions."""
    positions = np.arange(len(correct))
    masks = {f"mod {groups} = {r}": positions % groups == r for r in range(groups)}
    masks.update({"even": positions % 2 == 0, "odd": positions % 2 == 1})
    return {name: round(100 * float(1 - correct[mask].mean()), 3) for name, mask in masks.items()}


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    runs.add_output_flag(parser)
    args = parser.parse_args(argv)
    from models.model import trained_model

    run = runs.evaluated_run(args.output)
    net = trained_model(run.trainer_logs)

    def correct(prefix: str) -> np.ndarray:
        pixels, labels = mnist.load(prefix)
        return net.predict(mnist.scaled(pixels), batch_size=1000, verbose=0).argmax(axis=1) == labels

    test = correct(mnist.TEST)
    half = len(test) // 2
    return host.reported(
        {
            "run": run.run_id,
            "train_error_percent": error_rates(correct(mnist.TRAIN)),
            "test_error_percent": {
                "first half": round(100 * float(1 - test[:half].mean()), 3),
                "second half": round(100 * float(1 - test[half:].mean()), 3),
            },
        }
    )


if __name__ == "__main__":
    main()
