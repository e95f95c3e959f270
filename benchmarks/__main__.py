"""`python -m benchmarks <suite> [args]`: runs one benchmark suite, the same as `python -m benchmarks.<suite>
[args]`; `python -m benchmarks <suite> --help` gives the suite's own flags. Every suite writes its result
as a record under `benchmarks/results/` (`benchmarks.results` makes the benchmarks page from them).
"""

import importlib
import sys
from typing import List, Optional

SUITES = {
    "profile": "a profile's pipeline run from scratch: test accuracy, wall time, the pushed model's size",
    "training": "training throughput: the notebooks' input path against the Trainer's, and variants",
    "time_to_accuracy": "time to a test accuracy: the notebooks' training against the Trainer's",
    "warm_start": "fine-tuning the served model on new data against training from scratch",
    "ensemble": "an ensemble run's members, alone and averaged K at a time",
    "test_time_augmentation": "test-time augmentation's gain: trained CNNs predicting each digit once and rotated",
    "serving": "serving latency and throughput over REST, gRPC and in-process; first requests with warmup",
    "load": "concurrent clients and hot swaps against `digits serve`: errors, latency, memory, CPU by thread",
    "conformance": "TF Serving's own model-server tests against this server, from a tensorflow/serving checkout",
    "inference": "the served model's arithmetic per digit under each runtime (TensorFlow, oneDNN, XLA, TF Lite)",
    "pictures": "accuracy on test digits rendered as pictures, through predict_image_bytes",
    "drawing": "what a model reads of a 7 drawn on its drawing page, in headless Chromium",
    "drift": "the traffic monitor: false alarms on clean digits, the smallest windows and shares of shifted ones found",
    "suite": "`make test` from a fresh clone: the tests passed and the time it took",
    "results": "the benchmarks page made from the records (--check: fail if it is out of date)",
}
"""Every suite, by module name under `benchmarks`, with what it measures."""


def usage() -> str:
    width = max(map(len, SUITES))
    lines = [f"  {suite:{width}}  {about}" for suite, about in SUITES.items()]
    return "\n".join(["usage: python -m benchmarks <suite> [args]", "", "suites:", *lines, ""])


def main(argv: Optional[List[str]] = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        print(usage())
        return 0 if arguments else 2
    suite, rest = arguments[0], arguments[1:]
    if suite not in SUITES:
        print(f"unknown suite {suite!r}\n\n{usage()}", file=sys.stderr)
        return 2
    outcome = importlib.import_module(f"benchmarks.{suite}").main(rest)
    return outcome if isinstance(outcome, int) else 0


if __name__ == "__main__":
    sys.exit(main())
