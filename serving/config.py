"""The server's options and the configuration files it reads, in TF Serving's own formats.

Options carry TF Serving's flag names and defaults (one version per model, batching off, a new version
noticed within a second). The model config file is TF Serving's `ModelServerConfig` text proto, parsed
with its own message class; the batching parameters and monitoring files are TF Serving's
`BatchingParameters` and `MonitoringConfig` text protos, whose classes `tensorflow-serving-api` does not
ship, so they are declared here with the same field names and numbers and parsed by protobuf.
"""

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from models import features
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


LOG_COLLECTOR_TYPES = ("", "tfrecord")
"""`log_collector_config.type`s this server writes (both as TFRecord files of PredictionLog): TF Serving
leaves log collectors to plugins registered by type and ships none."""


@dataclasses.dataclass(frozen=True)
class RequestLogging:
    """TF Serving's `ModelConfig.logging_config`: each request sampled at `sampling_rate` is written,
    with its answer, as a `PredictionLog` to files named from `filename_prefix`."""

    filename_prefix: str
    sampling_rate: float


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: Tuple[Tuple[str, int], ...] = ()
    logging: Optional[RequestLogging] = None

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
class Flag:
    """How a `ServerOptions` field is set on the command line: `--<field name>` (TF Serving's spelling),
    hyphenated or shorter spellings as aliases, the help text, and how the text becomes the value
    (default: by the type of the field's default; a False bool is a switch)."""

    help: str
    aliases: Tuple[str, ...] = ()
    parse: Optional[Callable[[str], Any]] = None
    metavar: Optional[str] = None


FLAG = "flag"
"""The `ServerOptions` field metadata key under which a field's `Flag` is."""


def flag(help: str, *aliases: str, parse: Optional[Callable[[str], Any]] = None, metavar: Optional[str] = None) -> Any:
    """Field metadata making a `ServerOptions` field a command-line flag."""
    return {FLAG: Flag(help, aliases, parse, metavar)}


def _port(text: str) -> Optional[int]:
    """A port flag: a negative number turns the protocol off."""
    port = int(text)
    return None if port < 0 else port


def true_false(text: str) -> bool:
    """A TF Serving boolean flag's text: true, 1 or yes (any case) is true."""
    return text.lower() in ("1", "true", "yes")


def grpc_channel_arguments(text: str) -> Tuple[Tuple[str, Any], ...]:
    """TF Serving's `--grpc_channel_arguments`: `name=value` pairs separated by commas, a value that
    is an integer passed as one and any other as a string, as its server.cc builds them."""
    arguments: List[Tuple[str, Any]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise ValueError(f"expected name=value, got {item!r}")
        try:
            arguments.append((name, int(value)))
        except ValueError:
            arguments.append((name, value))
    return tuple(arguments)


_THREADS = 4 * (os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Everything the server takes, as TF Serving's `Server::Options`: the fields with `flag` metadata
    are the command-line flags of `python -m serving` and `digits serve`, named as TF Serving names
    them, with its defaults (one version per model, batching off, a new version noticed within a
    second). `resolve` turns the flags that name files or a single model into `models`, `batching` and
    `prometheus_path`."""

    models: Tuple[ModelConfig, ...] = ()
    """What is served; `resolve` fills it from the flags below."""
    model_name: str = dataclasses.field(
        default=features.MODEL_NAME,
        metadata=flag("the model's name, served as /v1/models/NAME", "--model-name"),
    )
    model_base_path: Optional[str] = dataclasses.field(
        default=None,
        metadata=flag("folder of integer version folders, as the Pusher writes them", "--model-base-path"),
    )
    model_config_file: Optional[str] = dataclasses.field(
        default=None,
        metadata=flag(
            "TF Serving's model config (model_config_list text proto: several models, version policies, "
            "version labels); replaces --model_name/--model_base_path"
        ),
    )
    model_config_file_poll_wait_seconds: float = dataclasses.field(
        default=0.0, metadata=flag("re-read the model config file this often (0: once, as TF Serving)")
    )
    host: str = dataclasses.field(
        default="127.0.0.1",
        metadata=flag("interface to bind; loopback by default, 0.0.0.0 exposes the server"),
    )
    rest_api_port: Optional[int] = dataclasses.field(
        default=8501,
        metadata=flag("REST port (0: a free one, printed at start; -1: no REST)", "--rest-port", parse=_port),
    )
    port: Optional[int] = dataclasses.field(
        default=8500, metadata=flag("gRPC port (0: a free one; -1: no gRPC)", "--grpc-port", parse=_port)
    )
    file_system_poll_wait_seconds: float = dataclasses.field(
        default=1.0, metadata=flag("how often to look for new versions", "--poll-seconds")
    )
    enable_batching: bool = dataclasses.field(
        default=False, metadata=flag("batch concurrent requests together (TF Serving's server-side batching)")
    )
    batching_parameters_file: Optional[str] = dataclasses.field(
        default=None, metadata=flag("TF Serving's BatchingParameters text proto (needs --enable_batching)")
    )
    batching: BatchingOptions = BatchingOptions()
    """The batch scheduler's parameters; `resolve` reads them from `batching_parameters_file`."""
    monitoring_config_file: Optional[str] = dataclasses.field(
        default=None,
        metadata=flag(f"TF Serving's MonitoringConfig text proto (without it: Prometheus at {PROMETHEUS_PATH})"),
    )
    prometheus_path: Optional[str] = PROMETHEUS_PATH
    """Where Prometheus metrics are served (None: off); `resolve` reads it from `monitoring_config_file`."""
    allow_version_labels_for_unavailable_models: bool = dataclasses.field(
        default=False, metadata=flag("let a version label name a version that does not serve yet")
    )
    enable_model_warmup: bool = dataclasses.field(
        default=True,
        metadata=flag("replay each version's assets.extra/tf_serving_warmup_requests before serving it"),
    )
    prefer_tflite_model: bool = dataclasses.field(
        default=False,
        metadata=flag(
            "serve a version's model.tflite with TF Lite's interpreter rather than its SavedModel (a folder "
            "holding only model.tflite is a version then)"
        ),
    )
    rest_api_timeout_in_ms: int = dataclasses.field(
        default=30_000, metadata=flag("model time limit for a REST request")
    )
    rest_api_num_threads: int = dataclasses.field(
        default=_THREADS, metadata=flag("threads that run unbatched model calls (TF Serving's default size)")
    )
    grpc_max_threads: int = dataclasses.field(default=_THREADS, metadata=flag("threads that answer gRPC calls"))
    grpc_socket_path: Optional[str] = dataclasses.field(
        default=None, metadata=flag("also serve gRPC on this UNIX socket (relative or absolute path)")
    )
    grpc_channel_arguments: Tuple[Tuple[str, Any], ...] = dataclasses.field(
        default=(),
        metadata=flag(
            "gRPC server arguments, comma-separated (e.g. grpc.max_connection_age_ms=2000)",
            parse=grpc_channel_arguments,
            metavar="NAME=VALUE,...",
        ),
    )
    enable_grpc_healthcheck_service: bool = dataclasses.field(
        default=False,
        metadata=flag(
            "serve gRPC's standard health checking service (grpc.health.v1.Health): SERVING for the server "
            '("") and for ModelService and PredictionService once serving, NOT_SERVING while stopping'
        ),
    )
    enable_profiler: bool = dataclasses.field(
        default=True,
        metadata=flag(
            "serve TensorFlow's profiler service (tensorflow.ProfilerService) on the gRPC port, for "
            "TensorBoard's profile capture"
        ),
    )
    max_num_load_retries: int = dataclasses.field(
        default=5, metadata=flag("times a version that failed to load is tried again")
    )
    load_retry_interval_micros: int = dataclasses.field(
        default=60_000_000, metadata=flag("wait between those tries, in microseconds")
    )
    request_log_file_bytes: int = dataclasses.field(
        default=64 * 1024 * 1024, metadata=flag("a request log file is closed and a new one begun at this size")
    )
    request_log_file_seconds: float = dataclasses.field(
        default=300.0, metadata=flag("... or at this age, so that readers see recent requests")
    )
    request_log_max_bytes: int = dataclasses.field(
        default=1024 * 1024 * 1024,
        metadata=flag("disk a model's request logs may use: the oldest closed files are deleted beyond it"),
    )
    feedback_dir: Optional[str] = dataclasses.field(
        default=None,
        metadata=flag(
            "keep the digits people label on the drawing page (the digit they meant) here, in spans of a "
            "feedback dataset the pipeline trains on (without it, the page asks nothing)"
        ),
    )
    request_log_queue_bytes: int = 256 * 1024 * 1024
    """Sampled requests waiting for the log writer, in bytes of their arrays; beyond it they are dropped
    (and counted), so that a slow disk never slows a request nor fills the memory."""
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


NOT_IMPLEMENTED_FLAGS: Dict[str, str] = {
    "rest_api_enable_cors_support": "no CORS headers are sent",
    "enable_per_model_batching_parameters": "the --batching_parameters_file applies to every model",
    "num_load_threads": "versions load one at a time",
    "num_unload_threads": "versions unload one at a time",
    "flush_filesystem_caches": "",
    "tensorflow_session_parallelism": "TensorFlow sizes its own thread pools",
    "tensorflow_session_config_file": "TensorFlow's default session options apply",
    "tensorflow_intra_op_parallelism": "TensorFlow sizes its own thread pools",
    "tensorflow_inter_op_parallelism": "TensorFlow sizes its own thread pools",
    "platform_config_file": "SavedModels load with the default options",
    "per_process_gpu_memory_fraction": "TensorFlow's GPU memory default applies",
    "num_request_iterations_for_warmup": "each warm-up request is replayed once",
    "remove_unused_fields_from_bundle_metagraph": "",
    "num_tflite_pools": "one TF Lite interpreter serves each version, one request at a time",
    "num_tflite_interpreters_per_pool": "one TF Lite interpreter serves each version, one request at a time",
    "enable_signature_method_name_check": "signatures are chosen by name and inputs, whatever their method",
    "xla_cpu_compilation_enabled": "",
    "xla_gpu_compilation_enabled": "",
    "thread_pool_factory_config_file": "",
    "mixed_precision": "",
    "skip_initialize_tpu": "",
    "enable_serialization_as_tensor_content": "tensors are answered as TensorFlow serializes them",
}
"""TF Serving's flags (its main.cc) that tune what this server does not have: accepted, so that a
deployment written for TF Serving starts, and reported with a warning naming what happens instead."""

REFUSED_FLAGS: Dict[str, str] = {
    "ssl_config_file": "TLS is not implemented: put a TLS-terminating proxy in front",
    "use_alts_credentials": "ALTS is not implemented",
    "saved_model_tags": "only the 'serve' MetaGraph is loaded",
}
"""TF Serving's flags whose effect a deployment relies on and this server does not give: set to
anything but their default (empty, false, `serve`), they stop the start-up instead of being ignored."""

_FLAG_DEFAULTS = {"saved_model_tags": "serve"}


def check_tf_serving_flags(given: Dict[str, str]) -> List[str]:
    """The warnings for TF Serving flags given (name -> text) that this server does not implement;
    `ConfigError` for one in `REFUSED_FLAGS` set to other than its default."""
    warnings = []
    for name, text in given.items():
        if name in REFUSED_FLAGS:
            if text.lower() not in ("", "false", "0", _FLAG_DEFAULTS.get(name, "")):
                raise ConfigError(f"--{name}={text}: {REFUSED_FLAGS[name]}")
            continue
        why = NOT_IMPLEMENTED_FLAGS[name]
        warnings.append(f"--{name}={text} is not implemented here and is ignored{'; ' + why if why else ''}")
    return warnings


def flags() -> List[Tuple[dataclasses.Field, Flag]]:
    """The `ServerOptions` fields that are command-line flags, in declaration order."""
    return [(field, field.metadata[FLAG]) for field in dataclasses.fields(ServerOptions) if FLAG in field.metadata]


def resolve(options: ServerOptions) -> ServerOptions:
    """The options with the files and the single model their flags name read into `models`, `batching`
    and `prometheus_path`, checked as TF Serving checks them (a mistake is reported before anything
    loads). Options that already list `models` keep them."""
    models = options.models
    if options.model_config_file:
        models = read_model_config(options.model_config_file)
    elif not models:
        if not options.model_base_path:
            raise ConfigError("give --model_base_path (one model) or --model_config_file (several)")
        models = single_model(options.model_name, options.model_base_path)
    batching = options.batching
    if options.batching_parameters_file:
        if not options.enable_batching:
            raise ConfigError("--batching_parameters_file is set without setting --enable_batching")
        batching = read_batching_parameters(options.batching_parameters_file)
    prometheus = options.prometheus_path
    if options.monitoring_config_file:
        prometheus = read_monitoring_config(options.monitoring_config_file)
    return dataclasses.replace(options, models=models, batching=batching, prometheus_path=prometheus)


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
        # TF Serving's wording (protobuf's text parser), which its own test suite looks for.
        raise ConfigError(f"{path}: Error parsing text-format {proto.DESCRIPTOR.full_name}: {e}") from None
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
        logging = request_logging(entry, source) if entry.HasField("logging_config") else None
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
                logging=logging,
            )
        )
    return tuple(models)


def request_logging(entry: model_server_config_pb2.ModelConfig, source: str) -> RequestLogging:
    """A model's `logging_config`, checked: a known collector type, a file prefix, a rate in [0, 1]."""
    collector = entry.logging_config.log_collector_config
    rate = entry.logging_config.sampling_config.sampling_rate
    where = f"{source}: model {entry.name}: logging_config"
    if collector.type not in LOG_COLLECTOR_TYPES:
        raise ConfigError(
            f"{where}: no log collector of type {collector.type!r}; this server writes TFRecord files "
            f"(type {' or '.join(repr(t) for t in LOG_COLLECTOR_TYPES)})"
        )
    if not collector.filename_prefix:
        raise ConfigError(f"{where}: log_collector_config has no filename_prefix")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{where}: sampling_rate {rate} is outside [0, 1]")
    return RequestLogging(os.path.abspath(collector.filename_prefix), rate)


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
