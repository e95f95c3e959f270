"""The baseline a candidate must beat: the model being served, read where the Pusher puts it.

TFX's examples find the baseline with a Resolver (LatestBlessedModelStrategy) that queries ML Metadata.
Open-source Kubeflow Pipelines cannot run resolver nodes at all. `ServedBaseline` reads the Pusher's
base directory instead, on every orchestrator alike: its newest version is what TF Serving serves (its
default version policy), so that is the model a candidate replaces. It copies that version into its
`Model` output, laid out as the Trainer lays out a model, so the Evaluator loads it the usual way.

On a pipeline's first run nothing is pushed yet, and the output stays empty. TFX's Evaluator only knows
"no baseline" as an empty input, which a component output cannot be; `BaselineAwareEvaluator` is TFX's
Evaluator with an executor that treats an empty baseline as none (the change threshold is then skipped,
as TFX skips it without a baseline).
"""

import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
from absl import logging
from tfx import types
from tfx import v1 as tfx
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs as specs
from tfx.types.standard_artifacts import Model
from tfx.utils import io_utils, path_utils

from serving.servable import SAVED_MODEL_FILE

SERVED_VERSION = "served_version"
"""Custom property of the baseline artifact: the version it was copied from (0: nothing served yet)."""


def served_version(base_directory: str) -> Optional[int]:
    """The newest complete version under a Pusher's base directory (an integer folder holding a
    saved_model.pb, as TF Serving looks for them), or None."""
    if not tf.io.gfile.isdir(base_directory):
        return None
    versions = [
        int(name.rstrip("/"))
        for name in tf.io.gfile.listdir(base_directory)
        if name.rstrip("/").isdigit()
        and tf.io.gfile.exists(os.path.join(base_directory, name.rstrip("/"), SAVED_MODEL_FILE))
    ]
    return max(versions, default=None)


def has_model(model: types.Artifact) -> bool:
    return bool(tf.io.gfile.exists(os.path.join(path_utils.serving_model_path(model.uri), SAVED_MODEL_FILE)))


@component
def ServedBaseline(serving_model_dir: Parameter[str], baseline: OutputArtifact[Model]) -> None:
    """Copies the newest version under `serving_model_dir` into `baseline` (nothing if none)."""
    version = served_version(serving_model_dir)
    baseline.set_int_custom_property(SERVED_VERSION, version or 0)
    if version is None:
        logging.info("No model served from %s yet: the candidate has no baseline", serving_model_dir)
        return
    source = os.path.join(serving_model_dir, str(version))
    io_utils.copy_dir(source, path_utils.serving_model_path(baseline.uri))
    logging.info("Baseline: version %d served from %s", version, source)


class BaselineAwareExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor, for which an empty baseline model (nothing served yet) is no baseline."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        baselines = input_dict.get(specs.BASELINE_MODEL_KEY) or []
        if baselines and not all(has_model(b) for b in baselines):
            logging.info("The baseline is empty (nothing served yet): evaluating the candidate alone")
            input_dict = {k: v for k, v in input_dict.items() if k != specs.BASELINE_MODEL_KEY}
        super().Do(input_dict, output_dict, exec_properties)


class BaselineAwareEvaluator(tfx.components.Evaluator):
    """TFX's Evaluator, with `BaselineAwareExecutor`. Its node id defaults to the class name: the pipeline
    gives it the id "Evaluator", as TFX's own would have."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(BaselineAwareExecutor)
