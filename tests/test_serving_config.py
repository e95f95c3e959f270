"""`serving.config`: TF Serving's configuration files (model config, batching parameters, monitoring)
and the server options that the flags and those files resolve to."""

import os

import pytest

from serving import config


def test_model_config_file_policies_and_labels(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("""
model_config_list {
  config { name: "digits" base_path: "/models/digits" model_platform: "tensorflow"
           model_version_policy { latest { num_versions: 2 } } version_labels { key: "stable" value: 3 } }
  config { name: "pinned" base_path: "/models/pinned" model_version_policy { specific { versions: 1 versions: 4 } } }
  config { name: "every" base_path: "gs://bucket/every" model_version_policy { all {} } }
  config { name: "plain" base_path: "/models/plain" }
}""")
    digits, pinned, every, plain = config.read_model_config(str(path))
    assert (digits.policy.choose([1, 2, 3, 5]), digits.label_map) == ([5, 3], {"stable": 3})
    assert pinned.policy.choose([1, 2, 3, 4, 5]) == [4, 1]
    assert every.policy.choose([2, 1, 3]) == [3, 2, 1] and every.base_path == "gs://bucket/every"
    assert plain.policy.choose([1, 2, 3]) == [3]  # TF Serving's default: the latest version only


@pytest.mark.parametrize(
    "text, message",
    [
        (
            'model_config_list { config { name: "a" base_path: "/x" } config { name: "a" base_path: "/y" } }',
            "Illegal to list model a multiple times in config list",
        ),
        (
            'model_config_list { config { name: "a" base_path: "relative" } }',
            "Expected model a to have an absolute path or URI; got base_path()=relative",
        ),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "onnx" } }', "platform 'onnx'"),
        ('model_config_list { config { nmae: "a" } }', 'has no field named "nmae"'),
        (
            "improperly formatted file",
            "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1 : Message type "
            '"tensorflow.serving.ModelServerConfig" has no field named "improperly"',
        ),
    ],
)
def test_model_config_file_mistakes_name_the_file(tmp_path, text, message):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=f"{path}: .*{message}".replace("(", r"\(").replace(")", r"\)")):
        config.read_model_config(str(path))


def test_batching_parameters_file(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text(
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "allowed_batch_sizes: 16\nallowed_batch_sizes: 64\n"
    )
    options = config.read_batching_parameters(str(path))
    assert (options.max_batch_size, options.batch_timeout_micros, options.allowed_batch_sizes) == (64, 2000, (16, 64))
    assert options.max_enqueued_batches == config.BatchingOptions().max_enqueued_batches == 10  # TF Serving's default
    path.write_text("max_batch_size { value: 64 }\nallowed_batch_sizes: 16\nallowed_batch_sizes: 32\n")
    with pytest.raises(config.ConfigError, match="Last entry in allowed_batch_sizes must match max_batch_size"):
        config.read_batching_parameters(str(path))


def test_monitoring_config_file(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true path: "/metrics" }')
    assert config.read_monitoring_config(str(path)) == "/metrics"
    path.write_text("prometheus_config { enable: true }")
    assert config.read_monitoring_config(str(path)) == config.PROMETHEUS_PATH
    path.write_text("prometheus_config { enable: false }")
    assert config.read_monitoring_config(str(path)) is None


def test_options_resolve_the_files_and_the_single_model_their_flags_name(tmp_path):
    single = config.resolve(config.ServerOptions(model_base_path="relative/digits"))
    assert [(m.name, m.base_path) for m in single.models] == [("digits", os.path.abspath("relative/digits"))]
    assert single.prometheus_path == config.PROMETHEUS_PATH and single.batching == config.BatchingOptions()
    models = tmp_path / "models.config"
    models.write_text('model_config_list { config { name: "a" base_path: "/a" } }')
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }")
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: false }")
    from_files = config.resolve(
        config.ServerOptions(
            model_base_path="/ignored",
            model_config_file=str(models),
            enable_batching=True,
            batching_parameters_file=str(batching),
            monitoring_config_file=str(monitoring),
        )
    )
    assert [m.name for m in from_files.models] == ["a"] and from_files.batching.max_batch_size == 8
    assert from_files.prometheus_path is None
    given = (config.ModelConfig("m", "/m"),)
    assert config.resolve(config.ServerOptions(models=given)).models == given  # Built in code: kept.


def test_options_that_name_nothing_to_serve_or_batching_without_batching_are_refused(tmp_path):
    with pytest.raises(config.ConfigError, match="give --model_base_path .* or --model_config_file"):
        config.resolve(config.ServerOptions())
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 8 }")
    with pytest.raises(config.ConfigError, match="--batching_parameters_file is set without setting --enable_batching"):
        config.resolve(config.ServerOptions(model_base_path="/m", batching_parameters_file=str(batching)))


def test_flags_are_the_fields_that_declare_one_under_tf_servings_names_and_defaults():
    """TF Serving's flag names and defaults; the options set in code only (limits, time-outs of the
    REST connection, the drawing page) are not flags."""
    flags = {field.name: field.default for field, _ in config.flags()}
    assert flags == {
        "model_name": "digits",
        "model_base_path": None,
        "model_config_file": None,
        "model_config_file_poll_wait_seconds": 0.0,
        "host": "127.0.0.1",
        "rest_api_port": 8501,
        "port": 8500,
        "file_system_poll_wait_seconds": 1.0,
        "enable_batching": False,
        "batching_parameters_file": None,
        "monitoring_config_file": None,
        "allow_version_labels_for_unavailable_models": False,
        "enable_model_warmup": True,
        "prefer_tflite_model": False,
        "rest_api_timeout_in_ms": 30_000,
        "rest_api_num_threads": config.ServerOptions.rest_api_num_threads,
        "grpc_max_threads": config.ServerOptions.grpc_max_threads,
        "grpc_socket_path": None,
        "grpc_channel_arguments": (),
        "enable_grpc_healthcheck_service": False,
        "enable_profiler": True,
        "max_num_load_retries": 5,
        "load_retry_interval_micros": 60_000_000,
        # This server's own: request log files (TF Serving leaves them to its log collector plugins),
        # and the drawing page's feedback.
        "request_log_file_bytes": 64 * 1024 * 1024,
        "request_log_file_seconds": 300.0,
        "request_log_max_bytes": 1024 * 1024 * 1024,
        "feedback_dir": None,
    }
    assert all(spec.help for _, spec in config.flags())


TF_SERVING_FLAGS = set(
    (
        "port",
        "grpc_socket_path",
        "rest_api_port",
        "rest_api_num_threads",
        "rest_api_timeout_in_ms",
        "rest_api_enable_cors_support",
        "enable_batching",
        "allow_version_labels_for_unavailable_models",
        "batching_parameters_file",
        "enable_per_model_batching_parameters",
        "model_config_file",
        "model_config_file_poll_wait_seconds",
        "model_name",
        "model_base_path",
        "num_load_threads",
        "num_unload_threads",
        "max_num_load_retries",
        "load_retry_interval_micros",
        "file_system_poll_wait_seconds",
        "flush_filesystem_caches",
        "tensorflow_session_parallelism",
        "tensorflow_session_config_file",
        "tensorflow_intra_op_parallelism",
        "tensorflow_inter_op_parallelism",
        "use_alts_credentials",
        "ssl_config_file",
        "platform_config_file",
        "per_process_gpu_memory_fraction",
        "saved_model_tags",
        "grpc_channel_arguments",
        "grpc_max_threads",
        "enable_model_warmup",
        "num_request_iterations_for_warmup",
        "monitoring_config_file",
        "remove_unused_fields_from_bundle_metagraph",
        "prefer_tflite_model",
        "num_tflite_pools",
        "num_tflite_interpreters_per_pool",
        "enable_signature_method_name_check",
        "xla_cpu_compilation_enabled",
        "xla_gpu_compilation_enabled",
        "enable_profiler",
        "thread_pool_factory_config_file",
        "mixed_precision",
        "skip_initialize_tpu",
        "enable_grpc_healthcheck_service",
        "enable_serialization_as_tensor_content",
    )
)
"""The flags of TF Serving's tensorflow_serving/model_servers/main.cc but `--version`."""
OWN_FLAGS = {"host", "request_log_file_bytes", "request_log_file_seconds", "request_log_max_bytes", "feedback_dir"}
"""This server's flags that TF Serving does not have."""


def test_grpc_channel_arguments_are_name_value_pairs_integers_as_integers():
    assert config.grpc_channel_arguments("grpc.max_connection_age_ms=2000, grpc.lb_policy_name=grpclb,") == (
        ("grpc.max_connection_age_ms", 2000),
        ("grpc.lb_policy_name", "grpclb"),
    )
    assert config.grpc_channel_arguments("") == ()
    with pytest.raises(ValueError, match="expected name=value"):
        config.grpc_channel_arguments("grpc.so_reuseaddr")


def test_tf_servings_flags_not_implemented_warn_and_those_a_deployment_relies_on_refuse():
    """Every flag of TF Serving's main.cc (but `--version`) is a flag here, implemented or named in one
    of the two tables."""
    implemented = {field.name for field, _ in config.flags()}
    named = set(config.NOT_IMPLEMENTED_FLAGS) | set(config.REFUSED_FLAGS)
    assert not implemented & named
    assert implemented - OWN_FLAGS | named == TF_SERVING_FLAGS
    warnings = config.check_tf_serving_flags(
        {"num_tflite_pools": "4", "xla_cpu_compilation_enabled": "true", "ssl_config_file": ""}
    )
    assert warnings == [
        "--num_tflite_pools=4 is not implemented here and is ignored; one TF Lite interpreter serves each "
        "version, one request at a time",
        "--xla_cpu_compilation_enabled=true is not implemented here and is ignored",
    ]
    assert config.check_tf_serving_flags({"saved_model_tags": "serve", "use_alts_credentials": "false"}) == []
    with pytest.raises(config.ConfigError, match="--ssl_config_file=/tls.conf: TLS is not implemented"):
        config.check_tf_serving_flags({"ssl_config_file": "/tls.conf"})
    with pytest.raises(config.ConfigError, match="--saved_model_tags=serve,gpu: only the 'serve' MetaGraph"):
        config.check_tf_serving_flags({"saved_model_tags": "serve,gpu"})
