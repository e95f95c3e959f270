"""The container entrypoint of every Kubeflow Pipelines and Vertex AI task: TFX's own
`kubeflow_v2_run_executor`, handed an ExecutorInput it can read.

TFX 1.16's entrypoint was written against Vertex AI's launcher. The open-source KFP 2.x backend hands a
task something else (kubeflow/pipelines `backend/src/v2/driver/` and `component/launcher_v2.go`, tags
2.2.0-2.5.0; `tests/kfp_launcher.py` cites the lines):

- Input artifacts typed `{"instanceSchema": ""}`: the driver rebuilds them from ML Metadata, where only
  the type's name is kept. TFX reads the title out of that YAML and crashes on the empty string
  (tensorflow/tfx#7768). Here the type comes from the task's own inputs spec
  (`--json_serialized_inputs_spec_args`), which the compiler wrote from the same component.
- Outputs that are not TFX's: KFP 2.5 with `PUBLISH_LOGS` adds `executor-logs` (`system.Artifact`) to
  every task, which TFX tries to import as a class. Outputs whose type names no importable class are
  the launcher's to fill; TFX never sees them.
- URIs on the object store: `minio://` and `s3://` artifacts are downloaded to, and uploaded from, the
  launcher's local mounts (`/minio/<bucket>/...`, `/s3/<bucket>/...`), which is where KFP's own Python
  components read and write them; TensorFlow and Beam have no file system for those schemes. `gs://` is
  read and written directly (TensorFlow and Beam have GCS file systems; Vertex AI downloads nothing).
  The ExecutorOutput names the artifacts by their store URIs again.
- Input artifacts named by their ML Metadata ids, with metadata as the store returns it (numbers as
  doubles, `display_name`, `store_session_info`): TFX takes those as they are.

Everything else is TFX's entrypoint, unchanged: same flags, same executors, same ExecutorOutput.
"""

import argparse
import json
from typing import Any, Dict, List, Optional, Tuple

import yaml
from absl import app, logging
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils, kubeflow_v2_run_executor
from tfx.orchestration.portable import outputs_utils
from tfx.utils import import_utils

from pipeline import configs

LAUNCHER_MOUNTS = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}
"""Object-store URI prefix -> the local folder KFP's launcher downloads inputs into and uploads outputs
from (`LocalPathForURI` in `launcher_v2.go`)."""


class ExecutorInputError(ValueError):
    """The ExecutorInput cannot be handed to TFX; the message names the artifact."""


def launcher_path(uri: str) -> str:
    """The launcher's local copy of an object-store URI."""
    for prefix, mount in LAUNCHER_MOUNTS.items():
        if uri.startswith(prefix):
            return mount + uri[len(prefix) :]
    raise ValueError(f"{uri}: no object store the launcher knows ({', '.join(LAUNCHER_MOUNTS)})")


def local_path(uri: str) -> str:
    """Where a task reads and writes `uri`: the URI itself where TensorFlow and Beam open its store
    (`gs://`), else the launcher's local copy."""
    if uri.startswith(configs.TENSORFLOW_SCHEMES) or "://" not in uri:
        return uri
    return launcher_path(uri)


def type_title(artifact_type: pipeline_spec_pb2.ArtifactTypeSchema) -> str:
    """The type's schema title ("" when the type is blank, as the open-source driver passes inputs)."""
    kind = artifact_type.WhichOneof("kind")
    if kind == "schema_title":
        return artifact_type.schema_title
    if kind == "instance_schema":
        schema = yaml.safe_load(artifact_type.instance_schema or "") or {}
        return str(schema.get("title", "")) if isinstance(schema, dict) else ""
    return ""


def importable(title: str) -> bool:
    """Whether TFX's entrypoint can import the class a type title names."""
    try:
        import_utils.import_class_by_path(compiler_utils.TITLE_TO_CLASS_PATH.get(title, title))
    except (ImportError, AttributeError, ValueError):
        return False
    return True


def fill_input_types(
    executor_input: pipeline_spec_pb2.ExecutorInput, inputs_spec: pipeline_spec_pb2.ComponentInputsSpec
) -> List[str]:
    """Gives every input artifact with a blank type its declared type; returns the inputs filled."""
    filled = []
    for name, artifacts in executor_input.inputs.artifacts.items():
        for artifact in artifacts.artifacts:
            if type_title(artifact.type):
                continue
            declared = inputs_spec.artifacts.get(name)
            if declared is None or not type_title(declared.artifact_type):
                raise ExecutorInputError(
                    f"input artifact {name!r} ({artifact.uri}) has no type, and the task's inputs spec declares none"
                )
            artifact.type.CopyFrom(declared.artifact_type)
            filled.append(name)
    return sorted(set(filled))


def drop_foreign_outputs(executor_input: pipeline_spec_pb2.ExecutorInput) -> List[str]:
    """Removes the outputs whose type is no class TFX can import (the launcher's own, such as
    `executor-logs`); returns their keys."""
    foreign = [
        key
        for key, artifacts in executor_input.outputs.artifacts.items()
        if not all(importable(type_title(a.type)) for a in artifacts.artifacts)
    ]
    for key in foreign:
        del executor_input.outputs.artifacts[key]
    return sorted(foreign)


def mount_uris(executor_input: pipeline_spec_pb2.ExecutorInput) -> Dict[str, str]:
    """Points every artifact at the launcher's local copy; returns local path -> store URI."""
    mapped: Dict[str, str] = {}
    for section in (executor_input.inputs.artifacts, executor_input.outputs.artifacts):
        for artifacts in section.values():
            for artifact in artifacts.artifacts:
                path = local_path(artifact.uri)
                if path != artifact.uri:
                    mapped[path] = artifact.uri
                    artifact.uri = path
    return mapped


def make_local_output_dirs(executor_input: Dict[str, Any], mapped: Dict[str, str]) -> None:
    """Creates the local folders of the outputs, as TFX's own launchers do before an executor runs: the
    KFP launcher makes only their parents (`prepareOutputFolders`), and executors write into them."""
    message = pipeline_spec_pb2.ExecutorInput()
    json_format.ParseDict(executor_input, message)
    outputs = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(message.outputs.artifacts)
    outputs_utils.make_output_dirs({k: [a for a in v if a.uri in mapped] for k, v in outputs.items()})


def restore_uris(output_file: str, mapped: Dict[str, str]) -> None:
    """Rewrites the ExecutorOutput TFX wrote so that its artifacts carry their store URIs again."""
    if not mapped:
        return
    from tfx.dsl.io import fileio

    with fileio.open(output_file, "r") as f:
        output = json.load(f)
    for artifacts in output.get("artifacts", {}).values():
        for artifact in artifacts.get("artifacts", []):
            artifact["uri"] = mapped.get(artifact.get("uri", ""), artifact.get("uri", ""))
    with fileio.open(output_file, "w") as f:
        f.write(json.dumps(output, indent=1, sort_keys=True))


def prepare(executor_input_json: str, inputs_spec_json: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """The ExecutorInput TFX's entrypoint can run (as JSON), and the local paths it uses for store URIs."""
    executor_input = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(executor_input_json, executor_input, ignore_unknown_fields=True)
    inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
    if inputs_spec_json:
        json_format.Parse(inputs_spec_json, inputs_spec, ignore_unknown_fields=True)
    filled = fill_input_types(executor_input, inputs_spec)
    if filled:
        logging.info("Input types from the task's inputs spec (the backend passed none): %s", ", ".join(filled))
    foreign = drop_foreign_outputs(executor_input)
    if foreign:
        logging.info("Outputs left to the launcher (not TFX artifact types): %s", ", ".join(foreign))
    mapped = mount_uris(executor_input)
    return json_format.MessageToJson(executor_input), mapped


def parse_flags(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """TFX's entrypoint flags (the rest are Beam's), as TFX parses them."""
    return kubeflow_v2_run_executor._parse_flags(argv[1:])


def run(parsed: Tuple[argparse.Namespace, List[str]]) -> None:
    """TFX's entrypoint on the prepared ExecutorInput; then the store URIs back in its ExecutorOutput."""
    args, beam_args = parsed
    args.json_serialized_invocation_args, mapped = prepare(
        args.json_serialized_invocation_args, args.json_serialized_inputs_spec_args
    )
    prepared = json.loads(args.json_serialized_invocation_args)
    make_local_output_dirs(prepared, mapped)
    kubeflow_v2_run_executor.main((args, beam_args))
    restore_uris(prepared["outputs"]["outputFile"], mapped)


if __name__ == "__main__":
    app.run(run, flags_parser=parse_flags)
