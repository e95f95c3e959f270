"""What a finished run produced, read back from ML Metadata: accuracy, blessing, push, locations.

Read from the store rather than remembered by the CLI, so that cached components (whose outputs come
from an earlier run) are reported just like freshly executed ones.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.writers import eval_config_writer
from tfx import v1 as tfx

from components.artifacts import Submission
from components.canary import PROPERTY_SUFFIX, REASON, p99_line
from components.digit_example_gen.executor import FEEDBACK_DIGITS, FEEDBACK_SPANS, span_ranges
from components.kaggle_submission import SUBMISSION_FILE, WRITTEN
from components.model_card import CARD_JSON

ACCURACY = "sparse_categorical_accuracy"


@dataclasses.dataclass
class RunSummary:
    run_id: Optional[str] = None
    run_seconds: Optional[float] = None
    """From the first execution's start to the last one's end, as ML Metadata recorded them."""
    accuracy: Optional[float] = None
    blessed: Optional[bool] = None
    pushed: Optional[bool] = None
    pushed_to: Optional[str] = None
    pushed_version: Optional[str] = None
    examples_uri: Optional[str] = None
    statistics_uri: Optional[str] = None
    transform_graph_uri: Optional[str] = None
    model_uri: Optional[str] = None
    evaluation_uri: Optional[str] = None
    trainer_logs: Optional[str] = None
    submission: Optional[str] = None
    """Kaggle's submission.csv, when the data had unlabeled digits and the model was blessed."""
    model_card: Optional[str] = None
    """The candidate's model card (JSON; the Markdown beside it), as the Pusher pushed it with the model."""
    canary_passed: Optional[bool] = None
    canary: Optional[str] = None
    """What the serving canary found: how fast the candidate served, or why it was refused."""
    feedback: Optional[str] = None
    """The feedback spans the run's data holds, e.g. "spans 3-5 (120 digits)" (None: it read no feedback
    root)."""
    report: Optional[str] = None
    component_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def lines(self) -> List[str]:
        accuracy = "n/a" if self.accuracy is None else f"{self.accuracy:.4%}"
        pushed = f"yes, version {self.pushed_version}, to {self.pushed_to}" if self.pushed else "no"
        out = [
            f"test accuracy      {accuracy}",
            f"blessed            {'yes' if self.blessed else 'no'}",
            f"serving canary     {self.canary or 'n/a'}",
            f"pushed             {pushed}",
            f"model              {self.model_uri}",
            f"evaluation (TFMA)  {self.evaluation_uri}",
            f"training logs      {self.trainer_logs}  (TensorBoard, metrics.csv)",
        ]
        if self.feedback:
            out.append(f"feedback           {self.feedback}")
        if self.model_card:
            out.append(f"model card         {self.model_card.removesuffix('.json')}.md")
        if self.submission:
            out.append(f"Kaggle submission  {self.submission}")
        if self.report:
            out.append(f"report             {self.report}")
        if self.component_seconds:
            out.append("wall time per component:")
            out += [f"  {name:38s} {seconds:8.1f} s" for name, seconds in self.component_seconds.items()]
        return out


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config: metadata_store_pb2.ConnectionConfig = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        metadata_path
    )
    return mlmd.MetadataStore(config)


def load_evaluation(evaluation_uri: str, model_name: str = tfma.CANDIDATE_KEY) -> Optional[tfma.EvalResult]:
    """A model's results in a TFMA evaluation output: the candidate's by default, or the baseline's
    (None if the run had no baseline). A single-model evaluation's model is the candidate."""
    _, _, _, models = eval_config_writer.load_eval_run(evaluation_uri)
    if model_name not in models:
        return None if model_name != tfma.CANDIDATE_KEY else tfma.load_eval_result(evaluation_uri)
    return tfma.load_eval_result(evaluation_uri, model_name=model_name)


def overall_accuracy(evaluation_uri: str, model_name: str = tfma.CANDIDATE_KEY) -> Optional[float]:
    """Accuracy on the overall slice of a model in a TFMA evaluation output."""
    result = load_evaluation(evaluation_uri, model_name)
    for slice_key, metrics in result.slicing_metrics if result else ():
        if slice_key == ():
            value = metrics[""][""].get(ACCURACY, {})
            return value.get("doubleValue")
    return None


def describe_canary(blessing: metadata_store_pb2.Artifact) -> Tuple[bool, str]:
    """(passed, one line) from ServingCanary's InfraBlessing."""
    props = blessing.custom_properties
    if props["blessed"].int_value != 1:
        return False, f"refused: {props[REASON].string_value}"
    latency = p99_line({k: v.double_value for k, v in props.items()}, PROPERTY_SUFFIX)
    return True, f"passed: AVAILABLE after {props['start_seconds'].double_value:.1f} s; one digit p99 {latency}"


def describe_feedback(examples: metadata_store_pb2.Artifact) -> Optional[str]:
    """Which feedback spans DigitExampleGen read into these Examples, and how many digits (None: it was
    given no feedback root)."""
    props = examples.custom_properties
    if FEEDBACK_SPANS not in props:
        return None
    spans = [int(span) for span in props[FEEDBACK_SPANS].string_value.split(",") if span]
    if not spans:
        return "no sealed span"
    return f"spans {span_ranges(spans)} ({props[FEEDBACK_DIGITS].int_value:,} digits)"


def _summarise(store: mlmd.MetadataStore, run: metadata_store_pb2.Context) -> RunSummary:
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    executions = store.get_executions_by_context(run.id)
    producers = {
        event.artifact_id: event.execution_id
        for event in store.get_events_by_execution_ids([e.id for e in executions])
        if event.type == metadata_store_pb2.Event.OUTPUT
    }
    execution_type = {e.id: store.get_execution_types_by_id([e.type_id])[0].name for e in executions}
    latest: Dict[str, metadata_store_pb2.Artifact] = {}
    for artifact in sorted(store.get_artifacts_by_context(run.id), key=lambda a: a.id):
        producer = execution_type.get(producers.get(artifact.id), "")
        kind = type_names[artifact.type_id]
        if producer.endswith("Transform") and kind != "TransformGraph":
            continue  # Transform also outputs Examples, ExampleStatistics and Schema.
        if kind == "Model" and not producer.endswith("Trainer"):
            # ServedBaseline's copy of the served model, ModelCard's copy of the candidate with its card.
            kind = "CardedModel" if producer.endswith("ModelCard") else "BaselineModel"
        latest[kind] = artifact
    summary = RunSummary(run_id=run.name)
    if executions:
        start = min(e.create_time_since_epoch for e in executions)
        summary.run_seconds = (max(e.last_update_time_since_epoch for e in executions) - start) / 1000.0
    uri = {name: artifact.uri for name, artifact in latest.items()}
    summary.examples_uri = uri.get("Examples")
    if "Examples" in latest:
        summary.feedback = describe_feedback(latest["Examples"])
    summary.statistics_uri = uri.get("ExampleStatistics")
    summary.transform_graph_uri = uri.get("TransformGraph")
    summary.model_uri = uri.get("Model")
    summary.trainer_logs = uri.get("ModelRun")
    summary.evaluation_uri = uri.get("ModelEvaluation")
    if summary.evaluation_uri:
        summary.accuracy = overall_accuracy(summary.evaluation_uri)
    if "ModelBlessing" in latest:
        summary.blessed = latest["ModelBlessing"].custom_properties["blessed"].int_value == 1
    if "CardedModel" in latest:
        summary.model_card = os.path.join(latest["CardedModel"].uri, "Format-Serving", CARD_JSON)
    if "InfraBlessing" in latest:
        summary.canary_passed, summary.canary = describe_canary(latest["InfraBlessing"])
    submission = latest.get(Submission.TYPE_NAME)
    if submission is not None and submission.custom_properties[WRITTEN].int_value:
        summary.submission = os.path.join(submission.uri, SUBMISSION_FILE)
    if "PushedModel" in latest:
        props = latest["PushedModel"].custom_properties
        summary.pushed = props["pushed"].int_value == 1
        summary.pushed_to = props["pushed_destination"].string_value or None
        summary.pushed_version = props["pushed_version"].string_value or None
    return summary


def latest_run(metadata_path: str, evaluated: bool = False, pushed: bool = False) -> RunSummary:
    """Summary of the newest pipeline run recorded in the store; with `evaluated`, of the newest run
    that got as far as the Evaluator (runs stopped earlier, e.g. by bad data, have nothing to report);
    with `pushed`, of the newest run that pushed a model."""
    store = _store(metadata_path)
    runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    for run in reversed(runs):
        summary = _summarise(store, run)
        if (summary.evaluation_uri or not evaluated) and (summary.pushed or not pushed):
            return summary
    return RunSummary()
