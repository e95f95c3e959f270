"""The `digits` command line: one settings object from profile and flags, shared by run and compile;
serve flags under TF Serving's names; failures a user can read."""

import logging

import pytest

from cli import logs, main
from models import features
from models.config import AUTO_PRECISION, DEFAULT_SEED, DEFAULT_STRATEGY
from pipeline import configs, local_runner


def test_user_beam_args_override_defaults_by_flag_name():
    args = configs.beam_args(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert args == ("--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert configs.beam_args(["--runner=FlinkRunner"])[-1] == "--runner=FlinkRunner"
    assert "--runner=DirectRunner" not in configs.beam_args(["--runner=FlinkRunner"])


def test_profiles_and_defaults():
    settings = main._settings(main.parser().parse_args(["run"]))
    assert settings.profile == configs.PROFILES[configs.DEFAULT_PROFILE]
    assert settings.trainer == configs.PROFILES[configs.DEFAULT_PROFILE].trainer
    assert (settings.trainer.seed, settings.trainer.strategy, settings.trainer.precision) == (
        DEFAULT_SEED,
        DEFAULT_STRATEGY,
        AUTO_PRECISION,
    )
    assert settings.data_root is None and settings.beam_args == configs.DEFAULT_BEAM_ARGS
    assert set(configs.PROFILES) == {"smoke", "standard", "full"}
    assert configs.PROFILES["standard"].min_accuracy >= 0.993 and configs.PROFILES["full"].min_accuracy >= 0.995


@pytest.mark.parametrize("command", ["run", "compile --target kubeflow"])
def test_run_and_compile_take_the_same_training_flags(command):
    flags = [
        "--profile",
        "smoke",
        "--precision",
        "float32",
        "--strategy",
        "mirrored",
        "--seed",
        "7",
        "--min-accuracy",
        "0.4",
        "--data",
        "/d",
        "--schema",
        "/s.pbtxt",
        "--beam-arg=--direct_num_workers=2",
    ]
    settings = main._settings(main.parser().parse_args(command.split() + flags))
    assert settings.profile.name == "smoke" and settings.min_accuracy == 0.4
    assert (settings.trainer.precision, settings.trainer.strategy, settings.trainer.seed) == ("float32", "mirrored", 7)
    assert settings.trainer.epochs == configs.PROFILES["smoke"].trainer.epochs
    assert (settings.data_root, settings.schema_path) == ("/d", "/s.pbtxt")
    assert settings.beam_args[-1] == "--direct_num_workers=2"


def test_settings_reach_create_pipeline_unchanged(monkeypatch, tmp_path):
    """The one path of a knob: flag -> Settings -> runner -> create_pipeline's arguments."""
    seen = {}

    def fake_create_pipeline(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(local_runner, "create_pipeline", fake_create_pipeline)
    assert (
        main.main(["run", "--profile", "smoke", "--precision", "float32", "--seed", "3", "--output", str(tmp_path)])
        == 1
    )
    assert seen["trainer_config"].precision == "float32" and seen["trainer_config"].seed == 3
    assert seen["record_limits"] == {features.TRAIN_SPLIT: 2400, features.TEST_SPLIT: 600}
    assert seen["min_accuracy"] == configs.PROFILES["smoke"].min_accuracy
    assert seen["data_root"] == configs.DATA_ROOT and seen["schema_path"] == configs.SCHEMA_PATH
    assert seen["serving_model_dir"] == configs.serving_model_dir(str(tmp_path))


def test_run_on_missing_data_fails_with_the_path(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    code = main.main(["run", "--data", str(missing), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{missing}: no digit data found" in err


def test_report_without_a_run_says_so(tmp_path, capsys):
    assert main.main(["report", "--output", str(tmp_path)]) == 1
    assert f"no pipeline runs under {tmp_path}" in capsys.readouterr().err


def test_serve_flags_take_tf_servings_names(tmp_path):
    args = main.parser().parse_args(
        [
            "serve",
            "--model_base_path",
            str(tmp_path),
            "--model_name",
            "mnist",
            "--port",
            "9000",
            "--rest_api_port",
            "0",
            "--file_system_poll_wait_seconds",
            "0.5",
            "--enable_batching",
        ]
    )
    options = main._server_options(args)
    assert [(m.name, m.base_path, m.policy.latest) for m in options.models] == [("mnist", str(tmp_path), 1)]
    assert (options.port, options.rest_api_port, options.file_system_poll_wait_seconds) == (9000, 0, 0.5)
    assert options.enable_batching and options.host == "127.0.0.1"
    old_names = main.parser().parse_args(
        ["serve", "--model-base-path", str(tmp_path), "--rest-port", "1", "--grpc-port", "2", "--poll-seconds", "3"]
    )
    assert (old_names.rest_api_port, old_names.port, old_names.file_system_poll_wait_seconds) == (1, 2, 3.0)


def test_serve_refuses_a_bad_config_file_by_name(tmp_path, capsys):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "digits" base_path: "relative/path" } }')
    assert main.main(["serve", "--model_config_file", str(config)]) == 1
    assert f"{config}: Expected model digits to have an absolute path" in capsys.readouterr().err
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }")
    assert main.main(["serve", "--batching_parameters_file", str(params), "--rest_api_port", "-1"]) == 1
    assert "without setting --enable_batching" in capsys.readouterr().err


def test_readable_logs_drop_known_noise_and_keep_real_warnings():
    def record(level, message):
        return logging.LogRecord("absl", level, "/elsewhere/lib.py", 1, message, None, None)

    readable = logs.ReadableLogs()
    assert not readable.filter(
        record(
            logging.ERROR,
            "[latest_validated_statistics_resolver] Input resolution "
            "error: Error while resolving inputs: <Strategy> returned None.",
        )
    )
    assert not readable.filter(
        record(
            logging.WARNING,
            "AutoGraph could not transform <function create_autocast_variable at 0x7f> and will run it as-is.",
        )
    )
    assert readable.filter(record(logging.ERROR, "Input resolution error: the store is locked"))
    assert readable.filter(record(logging.WARNING, "AutoGraph could not transform <function preprocessing_fn>"))
    assert not readable.filter(record(logging.INFO, "library chatter"))
