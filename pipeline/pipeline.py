"""The digits TFX pipeline: wiring of the components, and nothing else. Knobs live in configs.py."""

import json
from typing import Collection, Dict, List, Optional

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2

from components.anomaly_gate import AnomalyGate
from components.baseline import BaselineAwareEvaluator, ServedBaseline
from components.canary import ServingCanary
from components.digit_example_gen import DigitExampleGen, detect_input_config
from components.digit_example_gen.component import has_unlabeled
from components.digit_example_gen.executor import FEEDBACK_BASE_KEY
from components.kaggle_submission import KaggleSubmission
from components.model_card import ModelCard
from components.traffic_monitor import TrafficMonitor
from models import features
from models.config import TrainerConfig
from pipeline.configs import FEEDBACK_WINDOW, CanarySettings, SplitBuckets

ALWAYS_RUN = ("ServedBaseline", "AnomalyGate", "TrafficMonitor")
"""Nodes that read state outside their inputs (the served model, the last validated statistics, the
request logs): a cached result would be stale, so every runner runs them every time."""


def always_run(node_id: str, parameters: Collection[str]) -> bool:
    """Whether every runner runs a node every time, by its id and the names of its compiled parameters:
    the ALWAYS_RUN nodes, and ingestion when it reads a feedback root. TFX fingerprints only the files
    under `input_base`, so a newly sealed feedback span would otherwise be a cache hit."""
    return node_id in ALWAYS_RUN or FEEDBACK_BASE_KEY in parameters


def eval_config(min_accuracy: float, max_accuracy_drop: float) -> tfma.EvalConfig:
    """Accuracy overall and per true digit, confusion matrix; the gate looks at the overall slice only."""
    overall = tfma.SlicingSpec()
    gate = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        # Absolute change vs the latest blessed model; -1e-10 so that an equal model still passes.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_accuracy_drop - 1e-10},
        ),
    )
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=features.EXAMPLES_SIGNATURE, label_key=features.LABEL_KEY)],
        slicing_specs=[overall, tfma.SlicingSpec(feature_keys=[features.LABEL_KEY])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    # Thresholds on the MetricConfig (not the MetricsSpec, whose keys never match
                    # example-weighted post-export metrics in TFMA 0.47), for the overall slice only.
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        per_slice_thresholds=[tfma.PerSliceMetricThreshold(slicing_specs=[overall], threshold=gate)],
                    ),
                    tfma.MetricConfig(class_name="SparseCategoricalCrossentropy"),
                    tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                ],
            )
        ],
    )


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    schema_path: str,
    serving_model_dir: str,
    reference_file: str,
    preprocessing_fn: str,
    run_fn: str,
    trainer_config: TrainerConfig,
    min_accuracy: float,
    max_accuracy_drop: float,
    split_buckets: SplitBuckets,
    record_limits: Dict[str, int],
    beam_pipeline_args: List[str],
    canary: CanarySettings,
    warm_start: bool,
    input_config: Optional[example_gen_pb2.Input] = None,
    feedback_base: Optional[str] = None,
    feedback_window: int = FEEDBACK_WINDOW,
    request_log_prefix: Optional[str] = None,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """Ingest (with the newest `feedback_window` sealed spans of `feedback_base`, if given) -> statistics
    -> validate against the curated schema and the last validated data -> transform -> train -> evaluate
    against the bar and the served model, and serve it in a canary -> push if both blessed it; with
    `request_log_prefix`, the served model's logged traffic is compared with the training digits."""
    input_config = input_config or detect_input_config(data_root)
    example_gen = DigitExampleGen(
        input_base=data_root,
        input_config=input_config,
        eval_buckets=split_buckets.eval,
        test_buckets=split_buckets.test,
        total_buckets=split_buckets.total,
        record_limits=record_limits,
        feedback_base=feedback_base,
        feedback_window=feedback_window,
    )
    curated_schema = tfx.components.ImportSchemaGen(schema_file=schema_path)
    schema = curated_schema.outputs["schema"]
    # With the schema, the label is counted as a category: what the drift comparator needs.
    # Unlabeled digits (to score, not to learn from) are neither validated nor trained on.
    unlabeled = [features.UNLABELED_SPLIT]
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema, exclude_splits=unlabeled
    )
    # Inferred schema, kept only so that users can diff it against the curated one.
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema, exclude_splits=unlabeled
    )
    # Drift is judged against the statistics of the last data that passed the gate (none at first).
    anomaly_gate = AnomalyGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema,
        reference=reference_file,
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema,
        preprocessing_fn=preprocessing_fn,
        splits_config=tfx.proto.SplitsConfig(
            analyze=[features.TRAIN_SPLIT], transform=[features.TRAIN_SPLIT, features.EVAL_SPLIT]
        ),
        disable_statistics=True,  # Pre/post-transform statistics: nothing reads them.
    )
    transform.add_upstream_node(anomaly_gate)
    # The model being served (none on a pipeline's first run): the candidate's baseline, and with warm
    # start the weights it starts from.
    baseline = ServedBaseline(serving_model_dir=serving_model_dir)
    trainer = tfx.components.Trainer(
        run_fn=run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        base_model=baseline.outputs["baseline"] if warm_start else None,
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[features.EVAL_SPLIT]),
        custom_config=trainer_config.as_custom_config(),
    )
    evaluator = BaselineAwareEvaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline"],
        schema=schema,
        eval_config=eval_config(min_accuracy, max_accuracy_drop),
        example_splits=[features.TEST_SPLIT],
    ).with_id("Evaluator")
    # Served by a real model server, answering as exported and fast enough (InfraValidator's contract).
    serving_canary = ServingCanary(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        model_name=pipeline_name,
        latency_budget_ms=canary.latency_budget_ms,
        requests=canary.requests,
        start_timeout_s=canary.start_timeout_s,
    )
    # What the Pusher pushes: the candidate, with its model card in assets.extra/.
    model_card = ModelCard(
        model=trainer.outputs["model"],
        evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_canary.outputs["blessing"],
        baseline=baseline.outputs["baseline"],
        examples=example_gen.outputs["examples"],
        schema=schema,
        model_name=pipeline_name,
        trainer_config=json.dumps(trainer_config.as_custom_config(), sort_keys=True),
    )
    pusher = tfx.components.Pusher(
        model=model_card.outputs["model_with_card"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_canary.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    )
    components = [
        example_gen,
        curated_schema,
        statistics_gen,
        schema_gen,
        example_validator,
        anomaly_gate,
        transform,
        trainer,
        baseline,
        evaluator,
        serving_canary,
        model_card,
        pusher,
    ]
    if has_unlabeled(input_config):
        # Kaggle's test.csv: the blessed model scores the unlabeled digits into submission.csv.
        bulk_inferrer = tfx.components.BulkInferrer(
            examples=example_gen.outputs["examples"],
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            data_spec=tfx.proto.DataSpec(example_splits=unlabeled),
            model_spec=tfx.proto.ModelSpec(model_signature_name=[features.EXAMPLES_SIGNATURE]),
        )
        components += [bulk_inferrer, KaggleSubmission(inference_result=bulk_inferrer.outputs["inference_result"])]
    if request_log_prefix:
        # The served model's logged traffic against this run's training digits (informs, never stops).
        components.append(
            TrafficMonitor(
                examples=example_gen.outputs["examples"],
                baseline=baseline.outputs["baseline"],
                request_log_prefix=request_log_prefix,
            )
        )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args,
    )
