"""The finished run a benchmark reads: the newest evaluated run under a pipeline output folder, and its
`eval` split (where settings are chosen) and `test` split (what is reported) as ExampleGen wrote them;
or the newest pushed model."""

import argparse
import dataclasses
from typing import Dict, Optional

from models import features
from pipeline import configs, summary
from reports.run_report import Digits, read_split


@dataclasses.dataclass(frozen=True)
class EvaluatedRun:
    """What a benchmark needs of a run that reached the Evaluator: every path is known."""

    run_id: str
    accuracy: Optional[float]
    """The export's test accuracy (TFMA)."""
    examples_uri: str
    model_uri: str
    trainer_logs: str


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=configs.OUTPUT_ROOT, help="the pipeline output folder of the run")


def add_label_flag(parser: argparse.ArgumentParser) -> None:
    """`--label`: what sets the measured model apart from the default one (what `make run` trains), added
    to the records' names so that its runs are not taken for runs of the default model's measurements."""
    parser.add_argument("--label", default="", help="added to the records' names: a non-default model's profile")


def labelled(name: str, label: str) -> str:
    return f"{name}, {label}" if label else name


def pushed_model(output: str) -> str:
    """The newest pushed model under `output`; none ends the command, naming the folder."""
    pushed_to = summary.latest_run(configs.metadata_path(output), pushed=True).pushed_to
    if not pushed_to:
        raise SystemExit(f"no pushed model in {output}: run the pipeline first (make run)")
    return pushed_to


def evaluated_run(output: str) -> EvaluatedRun:
    """The newest run under `output` that reached the Evaluator; none ends the command, naming the folder."""
    run = summary.latest_run(configs.metadata_path(output), evaluated=True)
    if not run.run_id or not run.trainer_logs or not run.model_uri or not run.examples_uri:
        raise SystemExit(f"no evaluated run under {output}")
    return EvaluatedRun(run.run_id, run.accuracy, run.examples_uri, run.model_uri, run.trainer_logs)


def eval_and_test(run: EvaluatedRun) -> Dict[str, Digits]:
    return {split: read_split(run.examples_uri, split) for split in (features.EVAL_SPLIT, features.TEST_SPLIT)}
