"""AnomalyGate turns ExampleValidator's anomalies into one readable error."""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import (
    REFERENCE_COPIES,
    STATISTICS_FILE,
    ValidatedStatistics,
    describe_anomalies,
    describe_drift,
    describe_empty_splits,
    read_reference,
    record_validated,
)
from pipeline import configs


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


def _statistics_artifact(folder, labels, cls=standard_artifacts.ExampleStatistics):
    """Statistics of a `train` split with these labels, computed with the curated schema as StatisticsGen does."""
    import numpy as np
    import pandas as pd
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(configs.SCHEMA_PATH)
    frame = pd.DataFrame({"label": np.asarray(labels, np.int64)})
    stats = tfdv.generate_statistics_from_dataframe(frame, tfdv.StatsOptions(schema=schema))
    artifact = cls()
    artifact.uri = str(folder)
    if cls is standard_artifacts.ExampleStatistics:
        artifact.split_names = artifact_utils.encode_split_names(["train"])
    (folder / "Split-train").mkdir(parents=True)
    (folder / "Split-train" / STATISTICS_FILE).write_bytes(stats.SerializeToString())
    return artifact


def _schema_artifact(folder):
    artifact = standard_artifacts.Schema()
    artifact.uri = str(folder)
    folder.mkdir()
    (folder / "schema.pbtxt").write_text(open(configs.SCHEMA_PATH).read())
    return artifact


def test_drift_a_vanished_class_is_named_and_small_changes_pass(tmp_path):
    balanced = [d for d in range(10) for _ in range(100)]
    reference = _statistics_artifact(tmp_path / "ref", balanced, ValidatedStatistics)
    schema = _schema_artifact(tmp_path / "schema")
    slightly_different = balanced[:-30]  # 30 fewer nines: shares move by about 0.03
    assert describe_drift(_statistics_artifact(tmp_path / "ok", slightly_different), reference.uri, schema) == []
    without_sevens = [d for d in balanced if d != 7]
    (line,) = describe_drift(_statistics_artifact(tmp_path / "bad", without_sevens), reference.uri, schema)
    assert line.startswith("split 'train', feature 'label': against the last validated data: distribution drift")
    assert "Linfty distance" in line and line.endswith("maximum difference is: 7")


def test_the_reference_file_names_the_last_validated_statistics(tmp_path):
    """What the gate reads before and rewrites after a pass: no file is no reference (a first run); a
    file naming statistics that are gone is no reference either (with a warning), not a failure."""
    reference = str(tmp_path / "root" / "validated_statistics_reference.txt")
    assert read_reference(reference) is None
    statistics = _statistics_artifact(tmp_path / "stats", [1, 2, 3])
    validated = ValidatedStatistics()
    validated.uri = str(tmp_path / "validated")
    kept = record_validated(statistics, validated, reference)
    assert read_reference(reference) == kept and os.path.dirname(kept) == str(tmp_path / "root" / REFERENCE_COPIES)
    for folder in (kept, validated.uri):
        assert (
            open(os.path.join(folder, "Split-train", STATISTICS_FILE), "rb").read()
            == (tmp_path / "stats" / "Split-train" / STATISTICS_FILE).read_bytes()
        )
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [
        REFERENCE_COPIES,
        "validated_statistics_reference.txt",
    ]
    second = record_validated(statistics, validated, reference)
    assert read_reference(reference) == second != kept
    os.unlink(os.path.join(second, "Split-train", STATISTICS_FILE))
    assert read_reference(reference) is None


def test_an_empty_split_is_named(tmp_path):
    statistics = _statistics_artifact(tmp_path / "stats", [1, 2, 3])
    assert describe_empty_splits(statistics) == []
    empty = tmp_path / "stats" / "Split-train" / STATISTICS_FILE
    from tensorflow_metadata.proto.v0 import statistics_pb2

    empty.write_bytes(statistics_pb2.DatasetFeatureStatisticsList(datasets=[{"num_examples": 0}]).SerializeToString())
    assert describe_empty_splits(statistics) == ["split 'train', dataset: no examples"]
