"""AnomalyGate turns ExampleValidator's anomalies into one readable error."""

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import describe_anomalies


def _anomalies_artifact(tmp_path, per_split):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path)
    artifact.split_names = artifact_utils.encode_split_names(list(per_split))
    for split, anomalies in per_split.items():
        folder = tmp_path / f"Split-{split}"
        folder.mkdir()
        (folder / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    return artifact


def test_clean_data_has_nothing_to_say(tmp_path):
    assert describe_anomalies(_anomalies_artifact(tmp_path, {"train": anomalies_pb2.Anomalies()})) == []


def test_each_anomaly_is_one_line_with_split_and_feature(tmp_path):
    bad = anomalies_pb2.Anomalies()
    info = bad.anomaly_info["label"]
    info.short_description = "Out-of-range values"
    info.reason.add(description="Unexpectedly large value: 12.")
    bad.dataset_anomaly_info.short_description = "Low num examples"
    bad.dataset_anomaly_info.description = "The dataset has 0 examples."
    lines = describe_anomalies(_anomalies_artifact(tmp_path, {"train": anomalies_pb2.Anomalies(), "test": bad}))
    assert lines == [
        "split 'test', feature 'label': Out-of-range values: Unexpectedly large value: 12.",
        "split 'test', dataset: Low num examples: The dataset has 0 examples.",
    ]
