"""What a finished run produced, read back from ML Metadata: accuracy, blessing, push, locations.

Read from the store rather than remembered by the CLI, so that cached components (whose outputs come
from an earlier run) are reported just like freshly executed ones.
"""

import dataclasses
from typing import Dict, List, Optional

import ml_metadata as mlmd
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

ACCURACY = "sparse_categorical_accuracy"


@dataclasses.dataclass
class RunSummary:
    accuracy: Optional[float] = None
    blessed: Optional[bool] = None
    pushed: Optional[bool] = None
    pushed_to: Optional[str] = None
    model_uri: Optional[str] = None
    evaluation_uri: Optional[str] = None
    trainer_logs: Optional[str] = None
    component_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)

    def lines(self) -> List[str]:
        accuracy = "n/a" if self.accuracy is None else f"{self.accuracy:.4%}"
        pushed = f"yes, to {self.pushed_to}" if self.pushed else "no"
        out = [
            f"test accuracy      {accuracy}",
            f"blessed            {'yes' if self.blessed else 'no'}",
            f"pushed             {pushed}",
            f"model              {self.model_uri}",
            f"evaluation (TFMA)  {self.evaluation_uri}",
            f"training logs      {self.trainer_logs}  (TensorBoard, metrics.csv)",
        ]
        if self.component_seconds:
            out.append("wall time per component:")
            out += [f"  {name:32s} {seconds:8.1f} s" for name, seconds in self.component_seconds.items()]
        return out


def _store(metadata_path: str) -> mlmd.MetadataStore:
    config: metadata_store_pb2.ConnectionConfig = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        metadata_path
    )
    return mlmd.MetadataStore(config)


def overall_accuracy(evaluation_uri: str) -> Optional[float]:
    """Accuracy on the overall slice of a TFMA evaluation output."""
    result = tfma.load_eval_result(evaluation_uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key == ():
            value = metrics[""][""].get(ACCURACY, {})
            return value.get("doubleValue")
    return None


def latest_run(metadata_path: str) -> RunSummary:
    """Summary of the newest pipeline run recorded in the store."""
    store = _store(metadata_path)
    runs = store.get_contexts_by_type("pipeline_run")
    summary = RunSummary()
    if not runs:
        return summary
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    latest: Dict[str, metadata_store_pb2.Artifact] = {}
    for artifact in sorted(store.get_artifacts_by_context(run.id), key=lambda a: a.id):
        latest[type_names[artifact.type_id]] = artifact
    if "Model" in latest:
        summary.model_uri = latest["Model"].uri
    if "ModelRun" in latest:
        summary.trainer_logs = latest["ModelRun"].uri
    if "ModelEvaluation" in latest:
        summary.evaluation_uri = latest["ModelEvaluation"].uri
        summary.accuracy = overall_accuracy(summary.evaluation_uri)
    if "ModelBlessing" in latest:
        summary.blessed = latest["ModelBlessing"].custom_properties["blessed"].int_value == 1
    if "PushedModel" in latest:
        props = latest["PushedModel"].custom_properties
        summary.pushed = props["pushed"].int_value == 1
        summary.pushed_to = props["pushed_destination"].string_value or None
    return summary
