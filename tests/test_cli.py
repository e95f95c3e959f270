"""The `digits` command line: argument handling and failures a user can read."""

import dataclasses
import logging

from pipeline import cli, configs


def test_user_beam_args_override_defaults_by_flag_name():
    args = configs.beam_args(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert args == ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert configs.beam_args(["--runner=FlinkRunner"])[-1] == "--runner=FlinkRunner"
    assert "--runner=DirectRunner" not in configs.beam_args(["--runner=FlinkRunner"])


def test_profiles_and_defaults():
    args = cli.parser().parse_args(["run"])
    assert args.profile == configs.DEFAULT_PROFILE and args.data == configs.DATA_ROOT
    assert set(configs.PROFILES) == {"smoke", "standard", "full"}
    assert configs.PROFILES["standard"].min_accuracy >= 0.993 and configs.PROFILES["full"].min_accuracy >= 0.995


def test_run_on_missing_data_fails_with_the_path(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    code = cli.main(["run", "--data", str(missing), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{missing}: no digit data found" in err


def test_report_without_a_run_says_so(tmp_path, capsys):
    assert cli.main(["report", "--output", str(tmp_path)]) == 1
    assert f"no pipeline runs under {tmp_path}" in capsys.readouterr().err


def test_precision_flag_overrides_the_profile(monkeypatch, tmp_path):
    from pipeline import local_runner

    seen = []

    def fake_run(profile, **kwargs):
        seen.append(profile)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(local_runner, "run", fake_run)
    assert cli.main(["run", "--precision", "float32", "--output", str(tmp_path)]) == 1
    assert cli.main(["run", "--output", str(tmp_path)]) == 1
    assert [p.precision for p in seen] == ["float32", configs.DEFAULT_PRECISION]
    assert seen[0] == dataclasses.replace(configs.PROFILES[configs.DEFAULT_PROFILE], precision="float32")


def test_readable_logs_drop_known_noise_and_keep_real_warnings():
    def record(level, message):
        return logging.LogRecord("absl", level, "/elsewhere/lib.py", 1, message, None, None)

    readable = cli.ReadableLogs()
    assert not readable.filter(record(logging.ERROR, "[latest_validated_statistics_resolver] Input resolution "
                                                     "error: Error while resolving inputs: <Strategy> returned None."))
    assert not readable.filter(record(logging.WARNING, "AutoGraph could not transform <function "
                                                       "create_autocast_variable at 0x7f> and will run it as-is."))
    assert readable.filter(record(logging.ERROR, "Input resolution error: the store is locked"))
    assert readable.filter(record(logging.WARNING, "AutoGraph could not transform <function preprocessing_fn>"))
    assert not readable.filter(record(logging.INFO, "library chatter"))
