"""`digits`: run the pipeline locally, compile it for Kubeflow Pipelines, serve and query the model.

    digits run [--profile smoke|standard|full|fashion] [--data DIR] [--output DIR] [training flags]
    digits compile --target kubeflow|vertex [--output-file FILE] [--pipeline-root URI] [--image IMAGE] [training flags]
    digits serve [--model_base_path DIR | --model_config_file FILE] [--rest_api_port 8501] [--port 8500]
    digits predict FILE.png ... [--server http://127.0.0.1:8501 | --grpc 127.0.0.1:8500]
    digits report [--output DIR]
    digits monitor [--logs PREFIX] [--output DIR] [--feedback DIR] [--retrain]

The command line is the top of the house: it resolves one `Settings` from a profile and the flags and
hands it to the runner; heavy imports happen only in the command that needs them.
"""

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING, Optional, Sequence

from cli.logs import quiet_native_logs, setup_logging

if "--verbose" not in sys.argv:
    quiet_native_logs()

from models import features
from models.config import PRECISIONS, STRATEGIES
from monitoring.config import TRAFFIC_SCHEMA_PATH, MonitorSettings
from pipeline import configs
from serving import config as serving_config
from serving import main as serving_main

if TYPE_CHECKING:
    from pipeline import summary

SERVE_DEFAULTS = serving_config.ServerOptions()
PREDICT_CHUNK = 256
"""Files per request from `digits predict` (the server takes up to 1,024)."""


def _cmd_run(args: argparse.Namespace) -> int:
    timer = setup_logging(args.verbose)
    from pipeline import local_runner, summary  # Heavy imports: only for the command that needs them.

    started = time.time()
    settings = _settings(args)
    print(
        f"Running pipeline '{settings.model_name}', profile '{settings.profile.name}', data "
        f"{settings.data_root or configs.DATA_ROOT}, output {args.output}",
        flush=True,
    )
    try:
        local_runner.run(settings, output_root=args.output, enable_cache=not args.no_cache)
    except Exception as e:
        where = f" in component {timer.current}" if timer.current else ""
        print(f"\nRun FAILED{where} after {time.time() - started:.0f} s:\n{e}", file=sys.stderr)
        return 1
    result = summary.latest_run(configs.metadata_path(args.output, settings.model_name))
    result.component_seconds = timer.seconds
    status = 0
    if result.evaluation_uri:
        try:
            result.report = _write_report(args.output, settings.model_name, result)
        except Exception as e:
            print(f"The run finished, but its report failed: {e}", file=sys.stderr)
            status = 1
    print(f"\nRun finished in {time.time() - started:.0f} s")
    print("\n".join(result.lines()))
    return status


def _write_report(output_root: str, name: str, run: Optional["summary.RunSummary"] = None) -> str:
    from reports import run_report

    started = time.time()
    path = run_report.write_report(output_root, run, name)
    logging.getLogger("absl").info("Report written in %.0f s: %s", time.time() - started, path)
    return path


def _cmd_report(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from reports.run_report import ReportError

    try:
        path = _write_report(args.output, args.model_name)
    except ReportError as e:
        print(f"report failed: {e}", file=sys.stderr)
        return 1
    print(f"Report: {path}")
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from models import feedback
    from monitoring import drift, monitor
    from reports import traffic_report
    from reports.run_report import ReportError

    settings = _settings(args)
    name = settings.model_name
    limits = MonitorSettings(window=args.window, min_requests=args.min_requests, retrain_digits=args.retrain_digits)
    prefix = args.logs or configs.request_log_prefix(args.output, name)
    served = monitor.read_windows(prefix, limits)
    if not len(served) and not served.blank:
        print(f"digits monitor: no logged requests at {prefix}-*.tfrecord (see docs/monitoring.md)", file=sys.stderr)
        return 1
    try:
        training = traffic_report.training_reference(args.output, name, limits.training_sample)
    except ReportError as e:
        print(f"digits monitor: {e}", file=sys.stderr)
        return 1
    waiting = len(feedback.pictures(args.feedback, feedback.open_span(args.feedback))) if args.feedback else 0
    schema = drift.read_schema(args.traffic_schema)
    watch = monitor.watch(served, training, schema, limits, new_digits=waiting)
    page = traffic_report.write(watch, args.output, name, args.prometheus_file)
    print("\n".join(traffic_report.summary_lines(watch)))
    print(f"report             {page}")
    if not ((args.retrain or args.seal) and watch.retrain):
        return 0
    if args.feedback:
        print(f"Sealed feedback span {feedback.seal(args.feedback)} of {args.feedback}", flush=True)
    return _cmd_run(args) if args.retrain else 0


def _cmd_compile(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from pipeline import kubeflow_runner

    settings = _settings(args)
    try:
        path = kubeflow_runner.compile_pipeline(
            settings,
            args.output_file or configs.compiled_file(args.target, settings.model_name),
            target=args.target,
            pipeline_root=args.pipeline_root,
            image=args.image,
        )
    except kubeflow_runner.CompileError as e:
        print(f"digits compile: {e}", file=sys.stderr)
        return 2
    what = "Kubeflow Pipelines spec (PipelineSpec YAML)" if args.target == "kubeflow" else "Vertex AI PipelineJob"
    print(f"{what} written to {path}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    return serving_main.serve(args)


def _cmd_predict(args: argparse.Namespace) -> int:
    import grpc

    from serving.client import GrpcClient, RestClient
    from serving.errors import ServingError

    client = GrpcClient(args.grpc, args.model_name) if args.grpc else RestClient(args.server, args.model_name)
    try:
        for start in range(0, len(args.files), PREDICT_CHUNK):
            paths = args.files[start : start + PREDICT_CHUNK]
            pictures = []
            for path in paths:
                with open(path, "rb") as f:
                    pictures.append(f.read())
            for path, prediction in zip(paths, client.classify_pictures(pictures)):
                answer = f"{prediction.label} ({prediction.confidence:.1%})" if prediction.found else "no digit found"
                print(f"{path}: {answer}")
    except (OSError, ServingError) as e:
        print(f"predict failed: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"predict failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    return 0


def _settings(args: argparse.Namespace) -> configs.Settings:
    """The run's settings; flags that do not go together end the command with the reason."""
    try:
        return _resolved_settings(args)
    except ValueError as e:
        raise SystemExit(f"digits {args.command}: {e}") from None


def _resolved_settings(args: argparse.Namespace) -> configs.Settings:
    return configs.settings(
        args.profile,
        data_root=args.data,
        schema_path=args.schema,
        beam_arg=args.beam_arg,
        min_accuracy=args.min_accuracy,
        precision=args.precision,
        strategy=args.strategy,
        seed=args.seed,
        test_time_rotation=args.test_time_rotation,
        model_name=args.model_name,
        labels_file=args.labels,
        warm_start=args.warm_start,
        feedback_root=args.feedback,
        feedback_window=args.feedback_window,
        request_log_prefix=args.request_logs,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
    )


def _model_name(text: str) -> str:
    try:
        return configs.check_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _pipeline_flags() -> argparse.ArgumentParser:
    """The flags `run` and `compile` share: what the pipeline trains on and how."""
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--profile",
        choices=sorted(configs.PROFILES),
        default=configs.DEFAULT_PROFILE,
        help="smoke: a small subset, minutes; standard: full MNIST; full: longer training; ensemble: five "
        "CNNs averaged in one model; finetune: from the served model's weights; fashion: Fashion-MNIST "
        "(with --data)",
    )
    shared.add_argument(
        "--data",
        default=None,
        help="folder with MNIST IDX files, a Kaggle train.csv, or PNGs in digit folders (default: the bundled MNIST)",
    )
    shared.add_argument(
        "--feedback",
        default=None,
        metavar="DIR",
        help="labelled pictures people drew, in spans (span-N/<digit>/*.png): the newest sealed spans are "
        "trained on beside the data, and ingestion runs every time",
    )
    shared.add_argument(
        "--feedback-window",
        type=int,
        default=None,
        metavar="N",
        help=f"how many of the newest sealed feedback spans to read (default: {configs.FEEDBACK_WINDOW})",
    )
    shared.add_argument(
        "--request-logs",
        default=None,
        metavar="PREFIX",
        help="the served model's request logs (their filename_prefix): the run compares the newest logged "
        "requests with its training digits (TrafficMonitor: statistics and anomalies artifacts)",
    )
    shared.add_argument("--schema", default=None, help="curated schema the data is validated against (schema.pbtxt)")
    shared.add_argument(
        "--model-name",
        type=_model_name,
        default=None,
        help=f"the model's name, served as /v1/models/NAME, and its pipeline's (default: the profile's, "
        f"'{configs.PIPELINE_NAME}' for digits)",
    )
    shared.add_argument(
        "--labels",
        default=None,
        metavar="FILE",
        help=f"class names, one per line in label order (default: {configs.DATASET_LABELS} beside the data, "
        "else the digits 0-9)",
    )
    shared.add_argument("--strategy", choices=STRATEGIES, default=None, help="tf.distribute strategy")
    shared.add_argument("--seed", type=int, default=None, help="training seed")
    shared.add_argument("--epochs", type=int, default=None, help="override the profile's number of epochs")
    shared.add_argument(
        "--learning-rate", type=float, default=None, metavar="RATE", help="override the profile's (peak) learning rate"
    )
    shared.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="the CNN's dtype policy; auto (the default): bfloat16 where the CPU computes it "
        "natively (AVX512_BF16, AMX), float32 elsewhere",
    )
    shared.add_argument(
        "--test-time-rotation",
        type=float,
        default=None,
        metavar="DEGREES",
        help="the exported model reads each picture as it is and turned by +-DEGREES, and averages the "
        f"answers (default: the profile's, {configs.TEST_TIME_ROTATION:g} for digits; 0 reads it once, for a "
        "third of the inference)",
    )
    shared.add_argument("--min-accuracy", type=float, default=None, help="override the profile's accuracy bar")
    shared.add_argument(
        "--warm-start",
        action="store_true",
        default=None,
        help="train from the served model's weights instead of from scratch (the finetune profile does)",
    )
    shared.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="--FLAG=VALUE",
        help="extra Beam pipeline arg, repeatable, e.g. --beam-arg=--direct_num_workers=2 "
        "--beam-arg=--direct_running_mode=multi_processing",
    )
    shared.add_argument("--verbose", action="store_true", help="show every library log line")
    return shared


def _add_serve(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """`python -m serving`'s flags (one per `ServerOptions` field that declares it), serving the
    pipeline's own output folder unless told otherwise."""
    serve = commands.add_parser(
        "serve",
        help="serve pushed models with TF Serving's REST and gRPC APIs",
        description=serving_main.DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serving_main.add_flags(serve, {"model_base_path": configs.serving_model_dir(configs.OUTPUT_ROOT)})
    serve.add_argument("--verbose", action="store_true", help="show every library log line")
    serve.set_defaults(func=_cmd_serve)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="digits", description=(__doc__ or "").split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    shared = _pipeline_flags()

    run = commands.add_parser("run", parents=[shared], help="run the whole pipeline here with LocalDagRunner")
    run.add_argument(
        "--output", default=configs.OUTPUT_ROOT, help="artifacts, ML Metadata and the serving model directory go here"
    )
    run.add_argument("--no-cache", action="store_true", help="rerun every component even if cached")
    run.set_defaults(func=_cmd_run)

    comp = commands.add_parser("compile", parents=[shared], help="compile the pipeline for an orchestrator")
    comp.add_argument(
        "--target",
        choices=configs.KUBEFLOW_TARGETS,
        required=True,
        help="kubeflow: the open-source KFP 2.x backend (PipelineSpec YAML); vertex: Vertex AI (PipelineJob JSON)",
    )
    comp.add_argument(
        "--output-file",
        default=None,
        help=f"default: {configs.compiled_file('kubeflow')} or {configs.compiled_file('vertex')}",
    )
    comp.add_argument(
        "--pipeline-root",
        default=None,
        help="where the runs keep their artifacts: gs://, minio:// or s3:// (kubeflow; default "
        f"{configs.KUBEFLOW_PIPELINE_ROOT}, the backend's own), gs:// (vertex; required)",
    )
    comp.add_argument(
        "--image",
        required=True,
        help="this project's image in a registry the cluster pulls from, with a tag other than latest or a "
        "digest, e.g. registry.example.com/team/digits-tfx:1.0",
    )
    comp.set_defaults(func=_cmd_compile)

    _add_serve(commands)

    watch = commands.add_parser(
        "monitor",
        parents=[_pipeline_flags()],  # Flags of its own: its --profile defaults to finetune.
        help="compare served traffic with the training data; say (and with --retrain, start) when to train again",
        description="Reads the newest window of logged requests (the model config's logging_config), compares "
        "their picture features with the training digits' and the window before with TFDV's comparators, "
        "writes a report with the anomalies and Prometheus gauges, and says whether to train again: when "
        "something moved, or when enough labelled corrections wait in the --feedback folder. --retrain then "
        "seals the open feedback span and runs the pipeline (the finetune profile unless --profile says "
        "otherwise) on the data plus the newest feedback spans.",
    )
    watch.add_argument("--output", default=configs.OUTPUT_ROOT, help="the pipeline's --output folder")
    watch.add_argument(
        "--logs",
        default=None,
        metavar="PREFIX",
        help="the request logs' filename_prefix (default: OUTPUT/request_logs/NAME/requests)",
    )
    defaults = MonitorSettings()
    watch.add_argument("--window", type=int, default=defaults.window, help="requests judged: the newest ones")
    watch.add_argument(
        "--min-requests", type=int, default=defaults.min_requests, help="fewer requests in the window are not judged"
    )
    watch.add_argument(
        "--retrain-digits",
        type=int,
        default=defaults.retrain_digits,
        help="labelled corrections waiting in the open feedback span that are worth a run on their own",
    )
    watch.add_argument("--traffic-schema", default=TRAFFIC_SCHEMA_PATH, help="the curated schema of served traffic")
    watch.add_argument(
        "--prometheus-file", default=None, metavar="FILE", help="also write the gauges here (node_exporter textfile)"
    )
    when = watch.add_mutually_exclusive_group()
    when.add_argument(
        "--retrain", action="store_true", help="when the monitor says to train again: seal the open span and run"
    )
    when.add_argument(
        "--seal",
        action="store_true",
        help="when the monitor says to train again: seal the open span only (a recurring run trains on it)",
    )
    watch.add_argument("--no-cache", action="store_true", help="with --retrain: rerun every component")
    watch.set_defaults(func=_cmd_monitor, profile="finetune")

    report = commands.add_parser("report", help="(re)write the report of the newest evaluated run")
    report.add_argument("--output", default=configs.OUTPUT_ROOT, help="the run's --output folder")
    report.add_argument("--model-name", type=_model_name, default=configs.PIPELINE_NAME, help="the run's --model-name")
    report.add_argument("--verbose", action="store_true")
    report.set_defaults(func=_cmd_report)

    pred = commands.add_parser("predict", help="classify picture files with a running server")
    pred.add_argument("files", nargs="+", help="PNG (or JPEG, GIF, BMP) files of digits")
    pred.add_argument(
        "--server", default=f"http://{SERVE_DEFAULTS.host}:{SERVE_DEFAULTS.rest_api_port}", help="REST base URL"
    )
    pred.add_argument("--grpc", default=None, metavar="HOST:PORT", help="use gRPC at this address instead")
    pred.add_argument("--model-name", default=features.MODEL_NAME)
    pred.set_defaults(func=_cmd_predict)
    return top


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(list(argv) if argv is not None else None)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
