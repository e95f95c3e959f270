"""TF Serving's own model-server test suite against this server (`serving.conformance`), recorded.

    .venv/bin/python -m benchmarks.conformance --serving-checkout PATH [--note TEXT]

PATH is a checkout of tensorflow/serving (never downloaded here). Runs every test of
`tensorflow_model_server_test.py` through the `tensorflow_model_server` shim and records, under the
topic "conformance", how many passed, failed, errored and were skipped, with the tests that did not
pass named in the record's note; the per-test table is printed.
"""

import argparse
from typing import Dict, List, Optional

from benchmarks import report
from serving import conformance


def main(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--serving-checkout", required=True, metavar="PATH", help="a checkout of tensorflow/serving")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the whole suite may take")
    parser.add_argument("--note", default="", help="what the record should say of this run")
    args = parser.parse_args(argv)
    rows = conformance.run(args.serving_checkout, [], args.timeout, None)
    print(conformance.table(rows))
    figures: Dict[str, int] = {"tests": len(rows)}
    for outcome in ("passed", "failed", "error", "skipped"):
        figures[outcome] = sum(1 for _, got, _ in rows if got == outcome)
    missed = "; ".join(f"{test}: {outcome} ({reason})" for test, outcome, reason in rows if outcome != "passed")
    note = "; ".join(text for text in (args.note, missed and f"not passed: {missed}") if text)
    details = {"outcomes": {test: outcome for test, outcome, _ in rows}}
    return report.recorded(
        "conformance", {"tensorflow_model_server_test.py": figures}, "benchmarks.conformance", argv, details, note
    )


if __name__ == "__main__":
    main()
