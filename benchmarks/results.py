"""Benchmark results as data, and BENCHMARKS.md generated from them.

Every benchmark command ends by writing one JSON record (its topic, what it measured, the command that
reproduces it, the date, the commit, the machine and its figures) under `benchmarks/results/`. This
module reads those records back and writes BENCHMARKS.md and the README's short results table: per
topic, the newest figure of each measurement with its spread over every recorded run of it. Records of
settings that no longer exist are deleted from the folder; git keeps them.

    .venv/bin/python -m benchmarks.results            # regenerate BENCHMARKS.md and the README's table
    .venv/bin/python -m benchmarks.results --check    # fail if either is not what the records give

Light to import (no TensorFlow): the benchmarks that time TensorFlow's start import it first.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")
RESULTS_ENV = "DIGITS_BENCHMARK_RESULTS"
"""Where records are written instead of `benchmarks/results/` (the tests point it at a temporary folder)."""
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")
README = os.path.join(ROOT, "README.md")
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
"""The README's results table is generated between these two lines."""

TOPICS: Dict[str, str] = {
    "accuracy": "Accuracy and time per profile",
    "training": "Training throughput",
    "time_to_accuracy": "Time to accuracy",
    "serving": "Serving latency and throughput",
    "load": "Serving under load",
    "conformance": "TF Serving's own test suite",
    "robustness": "Robustness",
    "pictures": "Pictures",
    "monitoring": "Monitoring served traffic",
    "size": "Model size",
    "pipeline": "Pipeline overhead",
    "tests": "Test-suite time",
    "levers": "Levers tried and not kept",
}
"""Every topic a record may have, in the order BENCHMARKS.md shows them."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One run of one benchmark command."""

    topic: str
    name: str
    """What was measured within the topic (a profile, a protocol, a lever); runs of the same name are
    runs of the same measurement, and their spread is reported."""
    command: str
    date: str
    commit: str
    machine: str
    figures: Dict[str, Any]
    note: str = ""

    def __post_init__(self) -> None:
        if self.topic not in TOPICS:
            raise ValueError(f"unknown topic {self.topic!r}; one of {', '.join(TOPICS)}")


def machine() -> str:
    """The CPU as a reader compares hosts: its model, cores and the bfloat16 instructions it has."""
    model = platform.machine()
    flags: List[str] = []
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and model == platform.machine():
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    flags = [flag.upper() for flag in ("avx512_bf16", "amx_bf16") if flag in present]
                    break
    except OSError:
        pass
    return ", ".join([model, f"{os.cpu_count()} cores", *(flags or ["no bfloat16 instructions"])])


def commit() -> str:
    """The checkout's short commit, marked `-dirty` when files differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def command(module: str, argv: Optional[Sequence[str]]) -> str:
    """The command line that reproduces a benchmark: `module` run with `argv` (the process's own
    arguments when None, as `main()` reads them)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return " ".join([".venv/bin/python", "-m", module, *arguments])


def write(topic: str, name: str, figures: Dict[str, Any], command: str, note: str = "") -> str:
    """Writes a record of `figures` measured now, on this machine and commit; returns its path."""
    record = Record(topic, name, command, datetime.date.today().isoformat(), commit(), machine(), figures, note)
    folder = os.environ.get(RESULTS_ENV) or RESULTS_DIR
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = os.path.join(folder, f"{stamp}-{topic}-{_slug(name)}.json")
    for again in range(2, 100):  # Another run of the same measurement in the same second: keep both.
        if not os.path.exists(path):
            break
        path = os.path.join(folder, f"{stamp}-{topic}-{_slug(name)}-{again}.json")
    with open(f"{path}.tmp", "w") as out:
        json.dump(dataclasses.asdict(record), out, indent=2)
        out.write("\n")
    os.replace(f"{path}.tmp", path)
    return path


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "result"


def load(folder: str = RESULTS_DIR) -> List[Record]:
    """Every record in `folder`, oldest first; a file that is not a record is an error naming it."""
    records = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not entry.endswith(".json"):
            continue
        path = os.path.join(folder, entry)
        try:
            with open(path) as f:
                records.append(Record(**json.load(f)))
        except (ValueError, TypeError) as error:
            raise ValueError(f"{path}: not a benchmark record: {error}") from error
    return sorted(records, key=lambda record: record.date)


def _flat(figures: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in figures.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _number(key: str, value: float) -> str:
    """A figure as a reader reads it: accuracies as percentages, the rest with 3 significant digits."""
    if "accuracy" in key and 0 <= value <= 1:
        return f"{100 * value:.2f}%"
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _figure(key: str, runs: List[Dict[str, Any]]) -> str:
    latest = runs[-1][key]
    if not isinstance(latest, (int, float)) or isinstance(latest, bool):
        return f"{key}: {latest}"
    values = [run[key] for run in runs if isinstance(run.get(key), (int, float))]
    text = f"{key}: **{_number(key, latest)}**"
    if len(values) > 1 and min(values) != max(values):
        text += f" ({_number(key, min(values))} to {_number(key, max(values))} over {len(values)} runs)"
    elif len(values) > 1:
        text += f" ({len(values)} runs)"
    return text


def _measurements(records: Iterable[Record]) -> Dict[Tuple[str, str, str], List[Record]]:
    """Runs by (topic, name, machine): a figure's spread is over runs on one kind of machine, since the
    machines differ several times over (bfloat16 instructions or none)."""
    grouped: Dict[Tuple[str, str, str], List[Record]] = {}
    for record in records:
        grouped.setdefault((record.topic, record.name, record.machine), []).append(record)
    return grouped


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(records: Sequence[Record], decisions_link: str = "docs/decisions/index.md") -> str:
    """BENCHMARKS.md from `records`: a section per topic, a row per measurement (its newest run, and
    the spread of every figure over its runs), then the levers tried and not kept in one table.
    `decisions_link` is where the decision records are, relative to the page being written."""
    grouped = _measurements(records)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `.venv/bin/python -m benchmarks.results` from the records in `benchmarks/results/`: do not",
        "edit by hand. Each row is a measurement's newest run on one kind of machine; the spread is over",
        "every recorded run of it there.",
        "Hosts of the same type differ up to 2-3x in speed from day to day, so times compare only within",
        "one command's run (ratios), never across rows of different dates. Why the settings are what they",
        f"are: the [decision records]({decisions_link}).",
    ]
    for topic, title in TOPICS.items():
        measured = [(name, runs) for (of, name, _), runs in grouped.items() if of == topic]
        if not measured:
            continue
        lines += ["", f"## {title}", ""]
        if topic == "levers":
            lines += ["| lever | measured effect | decision | date, commit | command |"]
            lines += ["| --- | --- | --- | --- | --- |"]
            for name, runs in measured:
                latest = runs[-1]
                effect = "; ".join(f"{key}: {value}" for key, value in latest.figures.items() if key != "decision")
                lines.append(
                    f"| {_cell(name)} | {_cell(effect)} | {_cell(str(latest.figures.get('decision', '')))} "
                    f"| {latest.date}, {latest.commit} | `{_cell(latest.command)}` |"
                )
            continue
        lines += ["| measurement | figures (newest; spread over runs) | date, commit | machine | command |"]
        lines += ["| --- | --- | --- | --- | --- |"]
        for name, runs in measured:
            latest = runs[-1]
            flat_runs = [_flat(run.figures) for run in runs]
            figures = "<br>".join(_figure(key, flat_runs) for key in _flat(latest.figures))
            if latest.note:
                figures += f"<br>*{latest.note}*"
            lines.append(
                f"| {_cell(name)} | {_cell(figures)} | {latest.date}, {latest.commit} | {_cell(latest.machine)} "
                f"| `{_cell(latest.command)}` |"
            )
    return "\n".join(lines) + "\n"


SUMMARY: Dict[str, Tuple[str, ...]] = {
    "accuracy": ("test_accuracy", "wall_s"),
    "time_to_accuracy": ("training_s",),
    "load": ("requests_per_s", "p99_ms"),
    "conformance": ("passed", "tests"),
    "tests": ("passed", "duration_s"),
}
"""The figures the README's short table shows, per topic: the headline of each measurement."""


def render_summary(records: Sequence[Record]) -> str:
    """The README's table: per measurement of the topics in `SUMMARY`, its headline figures (newest,
    and their spread over runs on the newest run's kind of machine)."""
    lines = ["| measurement | figures (newest; spread over runs) | date | machine |", "| --- | --- | --- | --- |"]
    order = list(TOPICS)
    newest = {(record.topic, record.name): record.machine for record in records}
    grouped = _measurements(records)
    measurements = sorted(newest.items(), key=lambda item: (order.index(item[0][0]), item[0][1]))
    for (topic, name), machine in measurements:
        runs = grouped[(topic, name, machine)]
        keys = [key for key in SUMMARY.get(topic, ()) if key in _flat(runs[-1].figures)]
        if not keys:
            continue
        flat_runs = [_flat(run.figures) for run in runs]
        figures = "<br>".join(_figure(key, flat_runs) for key in keys)
        latest = runs[-1]
        lines.append(
            f"| {_cell(TOPICS[topic].lower())}: {_cell(name)} | {_cell(figures)} "
            f"| {latest.date} | {_cell(latest.machine)} |"
        )
    return "\n".join(lines)


def with_summary(readme: str, records: Sequence[Record]) -> str:
    """`readme` with the table between its results markers generated from `records`."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return f"{readme[:start]}\n{render_summary(records)}\n{readme[end:]}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--results", default=RESULTS_DIR, help="the folder of records")
    parser.add_argument("--out", default=BENCHMARKS_MD, help="the benchmarks page to write")
    parser.add_argument("--readme", default=README, help="the README whose results table to write")
    parser.add_argument("--check", action="store_true", help="fail if either differs from what the records give")
    args = parser.parse_args(argv)
    records = load(args.results)
    with open(args.readme) as f:
        readme = f.read()
    pages = {args.out: render(records), args.readme: with_summary(readme, records)}
    stale = []
    for path, text in pages.items():
        current = open(path).read() if os.path.exists(path) else ""
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            with open(path, "w") as out:
                out.write(text)
    for path in stale:
        print(f"{path} is not what the records give: run .venv/bin/python -m benchmarks.results", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
