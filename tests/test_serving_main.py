"""`serving.main`: `python -m serving` and `digits serve` take the same flags, one per `ServerOptions`
field that declares it, and turn them into the same options."""

import subprocess
import sys

import pytest

from cli import main as cli_main
from serving import config
from serving import main as serving_main


def _serve_parser():
    commands = next(a for a in cli_main.parser()._actions if a.dest == "command")
    return commands.choices["serve"]


def test_digits_serve_and_python_m_serving_list_every_flag_with_its_help():
    for parser in (serving_main.parser(), _serve_parser()):
        text = parser.format_help()
        for field, spec in config.flags():
            assert f"--{field.name}" in text and all(alias in text for alias in spec.aliases)
        documented = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        assert all(action.help for action in documented), [a.dest for a in documented if not a.help]
    own = {a.dest for a in serving_main.parser()._actions}
    assert own == {a.dest for a in _serve_parser()._actions}


def test_defaults_are_the_options_defaults_but_digits_serve_serves_the_pipelines_output():
    args = serving_main.parser().parse_args([])
    for field, _ in config.flags():
        assert getattr(args, field.name) == field.default, field.name
    assert _serve_parser().parse_args([]).model_base_path.endswith("serving_model/digits")


def test_flags_become_options(tmp_path):
    args = serving_main.parser().parse_args(
        [
            "--model_base_path",
            str(tmp_path),
            "--model-name",
            "m",
            "--grpc-port",
            "-1",
            "--rest_api_port",
            "0",
            "--enable_model_warmup",
            "false",
            "--allow_version_labels_for_unavailable_models",
            "--model_config_file_poll_wait_seconds",
            "2.5",
        ]
    )
    options = serving_main.options_from_flags(args)
    assert [(m.name, m.base_path) for m in options.models] == [("m", str(tmp_path))]
    assert (options.port, options.rest_api_port, options.enable_model_warmup) == (None, 0, False)
    assert options.allow_version_labels_for_unavailable_models and options.model_config_file_poll_wait_seconds == 2.5
    with pytest.raises(SystemExit):
        serving_main.parser().parse_args(["--port", "many"])
    with pytest.raises(ValueError, match="not serve flags"):
        serving_main.add_flags(serving_main.parser(), {"max_body_bytes": 1})


def test_tf_servings_command_line_is_taken_whole(tmp_path, caplog):
    """The flags TF Serving's own test suite starts its server with: switches as `--name=true|false`
    too, the gRPC socket and arguments, and TF Serving's flags this server does not implement, which
    are logged as ignored rather than stopping the start-up."""
    args = serving_main.parser().parse_args(
        [
            "--port=8500",
            f"--model_base_path={tmp_path}",
            "--grpc_socket_path=/tmp/tf-serving.sock",
            "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.so_reuseaddr=1",
            "--prefer_tflite_model=true",
            "--num_tflite_pools=2",
            "--enable_profiler",
            "--enable_model_warmup=false",
            "--tensorflow_intra_op_parallelism=2",
            "--enable_batching=false",
            "--enable_grpc_healthcheck_service=true",
            "--rest_api_num_threads=8",
        ]
    )
    with caplog.at_level("WARNING"):
        options = serving_main.options_from_flags(args)
    assert options.grpc_socket_path == "/tmp/tf-serving.sock" and not options.enable_batching
    assert options.grpc_channel_arguments == (("grpc.max_connection_age_ms", 2000), ("grpc.so_reuseaddr", 1))
    assert options.rest_api_num_threads == 8 and options.enable_grpc_healthcheck_service
    assert options.prefer_tflite_model and options.enable_profiler and not options.enable_model_warmup
    ignored = sorted(record.getMessage().split("=")[0] for record in caplog.records)
    assert ignored == ["--num_tflite_pools", "--tensorflow_intra_op_parallelism"]
    assert serving_main.parser().parse_args(["--enable_batching"]).enable_batching is True
    with pytest.raises(config.ConfigError, match="TLS is not implemented"):
        serving_main.options_from_flags(
            serving_main.parser().parse_args([f"--model_base_path={tmp_path}", "--ssl_config_file=/tls.conf"])
        )
    with pytest.raises(SystemExit):  # a flag TF Serving does not have either is still a mistake
        serving_main.parser().parse_args(["--no_such_flag=1"])


@pytest.mark.component  # A process of its own: TensorFlow's import alone takes seconds.
def test_python_m_serving_reports_a_bad_configuration_and_exits(tmp_path):
    config_file = tmp_path / "models.config"
    config_file.write_text('model_config_list { config { name: "digits" base_path: "relative/path" } }')
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--model_config_file", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"serve failed: {config_file}: Expected model digits to have an absolute path" in done.stderr
