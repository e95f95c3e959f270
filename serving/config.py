"""The server's options and the configuration files it reads, in TF Serving's own formats.

Options carry TF Serving's flag names and defaults (one version per model, batching off, a new version
noticed within a second). The model config file is TF Serving's `ModelServerConfig` text proto, parsed
with its own message class; the batching parameters and monitoring files are TF Serving's
`BatchingParameters` and `MonitoringConfig` text protos, whose classes `tensorflow-serving-api` does not
ship, so they are declared here with the same field names and numbers and parsed by protobuf.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import InvalidArgument

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
"""TF Serving's default path for its Prometheus exporter."""


class ConfigError(InvalidArgument):
    """A configuration file or option is wrong; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's `model_version_policy`: the newest `latest` versions, `specific` ones, or all."""

    latest: Optional[int] = 1
    specific: Tuple[int, ...] = ()
    all: bool = False

    def choose(self, versions: List[int]) -> List[int]:
        """The versions to serve among those on disk, newest first."""
        newest_first = sorted(versions, reverse=True)
        if self.all:
            return newest_first
        if self.specific:
            return [v for v in newest_first if v in self.specific]
        return newest_first[: max(self.latest or 1, 1)]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: Tuple[Tuple[str, int], ...] = ()

    @property
    def label_map(self) -> Dict[str, int]:
        return dict(self.labels)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's BatchingParameters, with the defaults TF Serving's batch scheduler applies."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: Tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything `digits serve` takes; field names are TF Serving's flag names."""

    models: Tuple[ModelConfig, ...] = ()
    host: str = "127.0.0.1"
    """Loopback: exposing the server is a decision the user makes with `--host 0.0.0.0`."""
    port: Optional[int] = 8500
    """gRPC port; 0 picks a free one, None turns gRPC off."""
    rest_api_port: Optional[int] = 8501
    """REST port; 0 picks a free one, None turns REST off."""
    model_config_file: Optional[str] = None
    model_config_file_poll_wait_seconds: float = 0.0
    """How often the config file is read again (0: once, as TF Serving)."""
    file_system_poll_wait_seconds: float = 1.0
    allow_version_labels_for_unavailable_models: bool = False
    enable_batching: bool = False
    batching: BatchingOptions = BatchingOptions()
    enable_model_warmup: bool = True
    rest_api_timeout_in_ms: int = 30_000
    rest_api_num_threads: int = 4 * (os.cpu_count() or 1)
    """Threads that run unbatched model calls for REST (TF Serving's default size)."""
    grpc_max_threads: int = 4 * (os.cpu_count() or 1)
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    prometheus_path: Optional[str] = PROMETHEUS_PATH
    """Where Prometheus metrics are served (None: off)."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest REST body: 1,024 images of 784 pixels as JSON need about 3.5 MB."""
    max_batch_per_request: int = 1024
    """Examples in one request; a larger batch is refused before anything is allocated."""
    max_values_per_request: int = 4 * 1024 * 1024
    """Values one gRPC input may declare (16 MB of float32): checked before the tensor is built."""
    request_read_timeout_seconds: float = 30.0
    """A REST client must send a whole request (headers and body) within this time."""
    keep_alive_seconds: float = 75.0
    """Idle keep-alive connections are closed after this; long, so that a client reusing a
    connection almost never races the server's close."""
    static_page: bool = True
    """Serve the drawing page at `/`."""


def single_model(name: str, base_path: str) -> Tuple[ModelConfig, ...]:
    """What TF Serving builds from `--model_name` and `--model_base_path`: latest version only."""
    return (ModelConfig(name=name, base_path=os.path.abspath(base_path)),)


def _parse(path: str, proto: message.Message) -> message.Message:
    try:
        with open(path, encoding="utf-8") as f:
            text_format.Parse(f.read(), proto)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except text_format.ParseError as e:
        raise ConfigError(f"{path}: {e}") from None
    return proto


def read_model_config(path: str) -> Tuple[ModelConfig, ...]:
    """TF Serving's model config file (`model_config_list { config { ... } }`) -> model configs."""
    return models_from_proto(_parse(path, model_server_config_pb2.ModelServerConfig()), path)


def models_from_proto(config: model_server_config_pb2.ModelServerConfig, source: str) -> Tuple[ModelConfig, ...]:
    """A ModelServerConfig (from a file, or a gRPC reload request) -> model configs, checked as TF
    Serving checks them; errors name `source`."""
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(
            f"{source}: ServerModelConfig type not supported. Only ModelConfigList is currently supported"
        )
    models: List[ModelConfig] = []
    for entry in config.model_config_list.config:
        if any(m.name == entry.name for m in models):
            raise ConfigError(f"{source}: Illegal to list model {entry.name} multiple times in config list")
        if not entry.name:
            raise ConfigError(f"{source}: a model config has no name")
        if not os.path.isabs(entry.base_path) and "://" not in entry.base_path:
            raise ConfigError(
                f"{source}: Expected model {entry.name} to have an absolute path or URI; "
                f"got base_path()={entry.base_path}"
            )
        if entry.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{source}: model {entry.name}: platform {entry.model_platform!r} is not served here")
        policy = entry.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        models.append(
            ModelConfig(
                name=entry.name,
                base_path=entry.base_path,
                policy=VersionPolicy(
                    latest=policy.latest.num_versions if kind == "latest" else 1,
                    specific=tuple(policy.specific.versions) if kind == "specific" else (),
                    all=kind == "all",
                ),
                labels=tuple(sorted(entry.version_labels.items())),
            )
        )
    return tuple(models)


_F = descriptor_pb2.FieldDescriptorProto
Field = Tuple[str, int, int, str, int]
"""(name, number, type, type name for messages, label)."""


def _message_classes(file_name: str, messages: Dict[str, List[Field]]) -> Dict[str, type]:
    """Protobuf message classes declared field by field in package `tensorflow.serving`, in a pool of
    their own so that they never clash with classes of the same name elsewhere."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name=f"digits_serving/{file_name}",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers_pb2.DESCRIPTOR.name],
    )
    for message_name, fields in messages.items():
        declared = file.message_type.add(name=message_name)
        for field_name, number, field_type, type_name, label in fields:
            field = declared.field.add(name=field_name, number=number, type=field_type, label=label)
            if type_name:
                field.type_name = type_name
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in messages
    }


_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_INT64_VALUE = (_F.TYPE_MESSAGE, ".google.protobuf.Int64Value")
BatchingParameters = _message_classes(
    "session_bundle_config.proto",
    {
        "BatchingParameters": [
            ("max_batch_size", 1, *_INT64_VALUE, _OPTIONAL),
            ("batch_timeout_micros", 2, *_INT64_VALUE, _OPTIONAL),
            ("max_enqueued_batches", 3, *_INT64_VALUE, _OPTIONAL),
            ("num_batch_threads", 4, *_INT64_VALUE, _OPTIONAL),
            ("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue", _OPTIONAL),
            ("allowed_batch_sizes", 6, _F.TYPE_INT64, "", _REPEATED),
            ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, "", _OPTIONAL),
            ("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, ".google.protobuf.BoolValue", _OPTIONAL),
            ("max_execution_batch_size", 9, *_INT64_VALUE, _OPTIONAL),
        ]
    },
)["BatchingParameters"]
"""TF Serving's `BatchingParameters` (session_bundle_config.proto), field for field."""

MonitoringConfig = _message_classes(
    "monitoring_config.proto",
    {
        "PrometheusConfig": [("enable", 1, _F.TYPE_BOOL, "", _OPTIONAL), ("path", 2, _F.TYPE_STRING, "", _OPTIONAL)],
        "MonitoringConfig": [
            ("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", _OPTIONAL)
        ],
    },
)["MonitoringConfig"]
"""TF Serving's `MonitoringConfig` (monitoring_config.proto), field for field."""


def read_batching_parameters(path: str) -> BatchingOptions:
    """TF Serving's `--batching_parameters_file` -> options; unset fields keep TF Serving's defaults."""
    proto = _parse(path, BatchingParameters())
    defaults = BatchingOptions()
    values = {
        field: getattr(proto, field).value if proto.HasField(field) else getattr(defaults, field)
        for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
    }
    allowed = tuple(proto.allowed_batch_sizes)
    if allowed and allowed[-1] != values["max_batch_size"]:
        raise ConfigError(
            f"{path}: Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
            f"{allowed[-1]}; expected {values['max_batch_size']}"
        )
    if proto.pad_variable_length_inputs or (
        proto.HasField("enable_large_batch_splitting") and proto.enable_large_batch_splitting.value
    ):
        raise ConfigError(f"{path}: pad_variable_length_inputs and enable_large_batch_splitting are not supported")
    if min(values.values()) < 0 or values["max_batch_size"] == 0 or values["num_batch_threads"] == 0:
        raise ConfigError(f"{path}: batch sizes and thread counts must be positive")
    return BatchingOptions(allowed_batch_sizes=allowed, **values)


def read_monitoring_config(path: str) -> Optional[str]:
    """TF Serving's `--monitoring_config_file` -> the metrics path, or None when Prometheus is off."""
    config = _parse(path, MonitoringConfig()).prometheus_config
    return (config.path or PROMETHEUS_PATH) if config.enable else None
