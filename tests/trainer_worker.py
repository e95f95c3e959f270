"""One replica of the Trainer, as a worker pool on Vertex AI (or any cluster) runs it: TFX's Trainer
executor on the pipeline's artifacts, with TF_CONFIG naming the cluster and this worker's place in it.

    TF_CONFIG='{"cluster": {...}, "task": {...}}' python -m tests.trainer_worker JOB.json

JOB.json: {"transformed_examples": URI, "transform_graph": URI, "schema": URI, "base_model": URI or
null, "model": URI, "model_run": URI, "custom_config": {...}}.
"""

import json
import sys

from absl import logging
from tfx import types
from tfx.components.trainer.executor import GenericExecutor
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from models import features
from pipeline import configs


def _artifact(kind: type, uri: str, splits: tuple = ()) -> types.Artifact:
    artifact = kind()
    artifact.uri = uri
    if splits:
        artifact.split_names = artifact_utils.encode_split_names(list(splits))
    return artifact


def main(job_path: str) -> None:
    logging.set_verbosity(logging.INFO)  # As TFX's container entrypoint does.
    with open(job_path) as f:
        job = json.load(f)
    inputs = {
        specs.EXAMPLES_KEY: [
            _artifact(
                standard_artifacts.Examples, job["transformed_examples"], (features.TRAIN_SPLIT, features.EVAL_SPLIT)
            )
        ],
        specs.TRANSFORM_GRAPH_KEY: [_artifact(standard_artifacts.TransformGraph, job["transform_graph"])],
        specs.SCHEMA_KEY: [_artifact(standard_artifacts.Schema, job["schema"])],
    }
    if job.get("base_model"):
        inputs[specs.BASE_MODEL_KEY] = [_artifact(standard_artifacts.Model, job["base_model"])]
    outputs = {
        specs.MODEL_KEY: [_artifact(standard_artifacts.Model, job["model"])],
        specs.MODEL_RUN_KEY: [_artifact(standard_artifacts.ModelRun, job["model_run"])],
    }
    exec_properties = {
        specs.RUN_FN_KEY: configs.RUN_FN,
        specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=[features.TRAIN_SPLIT])),
        specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=[features.EVAL_SPLIT])),
        specs.CUSTOM_CONFIG_KEY: json.dumps(job["custom_config"]),
    }
    GenericExecutor().Do(inputs, outputs, exec_properties)


if __name__ == "__main__":
    main(sys.argv[1])
