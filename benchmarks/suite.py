"""The test suite from a fresh clone: `make test` (setup, checks, every test) in a new clone of this
checkout's commit, as CI and a new contributor run it.

    .venv/bin/python -m benchmarks.suite [--keep]

Clones the repository's HEAD into a temporary folder (uncommitted changes are not in it), runs `make
test` there with its output passed through, and reads pytest's summary line. Recorded under the topic
"tests" as "make test from a fresh clone": tests passed, failed, skipped and errors, pytest's own
duration and the wall time of the whole `make test` (the virtual environment's setup included). Takes
as long as the suite does (minutes); `make test` failing in pytest is recorded too, then the command fails.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from benchmarks import report, results

_SUMMARY = re.compile(r"^=+ (?P<counts>.*\d+ (?:passed|failed|error|errors|skipped).*) in (?P<seconds>[\d.]+)s")
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def pytest_summary(output: str) -> Dict[str, float]:
    """The counts and duration of pytest's last summary line in `output` ("=== 3 passed, 1 skipped in
    9.12s (0:00:09) ==="): passed, failed, skipped and errors (0 when absent) and duration_s."""
    lines = [match for match in map(_SUMMARY.match, output.splitlines()) if match]
    if not lines:
        raise ValueError("no pytest summary line in the output")
    counts = {kind.removesuffix("s"): int(n) for n, kind in _COUNT.findall(lines[-1]["counts"])}
    return {
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "errors": counts.get("error", 0),
        "duration_s": float(lines[-1]["seconds"]),
    }


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args(argv)
    clone = tempfile.mkdtemp(prefix="digits-suite-")
    subprocess.run(["git", "clone", "--quiet", results.ROOT, clone], check=True)
    started = time.perf_counter()
    process = subprocess.Popen(["make", "test"], cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output: List[str] = []
    for line in process.stdout:
        sys.stdout.write(line)
        output.append(line)
    code = process.wait()
    wall = round(time.perf_counter() - started, 1)
    try:
        figures: Dict[str, Any] = {**pytest_summary("".join(output)), "wall_s": wall}
    except ValueError:
        raise SystemExit(f"make test ended (exit code {code}) before pytest's summary: nothing recorded") from None
    details = {"exit_code": code, "clone": clone if args.keep else None}
    result = report.recorded("tests", {"make test from a fresh clone": figures}, "benchmarks.suite", argv, details)
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)
    if code:
        raise SystemExit(f"make test failed (exit code {code})")
    return result


if __name__ == "__main__":
    main()
