"""`digits`: run the pipeline locally, compile it for Kubeflow Pipelines, serve and query the model.

    digits run [--profile smoke|standard|full] [--data DIR] [--output DIR] [--beam-arg=--flag=value ...]
    digits compile --target kubeflow [--output-file FILE] [--pipeline-root URI] [--image IMAGE]
    digits serve [--model-base-path DIR] [--rest-port 8501] [--grpc-port 8500] [--host 127.0.0.1]
    digits predict FILE.png ... [--server http://127.0.0.1:8501 | --grpc 127.0.0.1:8500]
    digits report [--output DIR]
"""

import argparse
import dataclasses
import logging
import os
import re
import sys
import threading
import time
import warnings
from typing import Dict, List, Optional

if "--verbose" not in sys.argv:
    # Start-up chatter of TensorFlow's C++ side and of Google client libraries, printed at import time,
    # before any logging can be configured; --verbose shows it.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

from absl import logging as absl_logging  # noqa: E402

from pipeline import configs  # noqa: E402

LOG_FORMAT, LOG_DATE_FORMAT = "%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"
PREDICT_CHUNK = 256
"""Files per request from `digits predict` (the server takes up to 1,024)."""
_COMPONENT_EVENT = re.compile(r"Component (\S+) is (running|finished)\.")
_KNOWN_NOISE = re.compile(
    r"[Dd]eprecat|property_predicate is not supported|crcmod package not found"
    r"|does not have payload_format custom property"  # TFX 1.16 on Transform's output; harmless.
    r"|Input resolution error: .* returned None"  # A resolver with nothing to find yet: a first run.
    r"|AutoGraph could not transform <function create_autocast_variable"  # Mixed precision; harmless.
)


class ComponentTimer(logging.Filter):
    """Notes when each component starts and ends, from LocalDagRunner's own log lines."""

    def __init__(self):
        super().__init__()
        self.started: Dict[str, float] = {}
        self.seconds: Dict[str, float] = {}
        self.current: Optional[str] = None

    def filter(self, record: logging.LogRecord) -> bool:
        match = _COMPONENT_EVENT.search(record.getMessage())
        if match:
            name, state = match.groups()
            if state == "running":
                self.started[name], self.current = time.time(), name
            else:
                self.seconds[name] = time.time() - self.started.get(name, time.time())
        return True


class ReadableLogs(logging.Filter):
    """Keeps warnings, component start/end and this project's own progress; drops library INFO noise."""

    def __init__(self):
        super().__init__()
        self._own = tuple(os.path.join(configs.PROJECT_ROOT, p) + os.sep for p in ("models", "components", "pipeline", "reports"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return not _KNOWN_NOISE.search(record.getMessage())
        return record.pathname.startswith(self._own) or bool(_COMPONENT_EVENT.search(record.getMessage()))


def setup_logging(verbose: bool) -> ComponentTimer:
    """Filters sit on the loggers, not on handlers, so they hold whichever handler a library installs."""
    absl_logging.set_verbosity(absl_logging.INFO)
    timer = ComponentTimer()
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(timer)
    if not logging.getLogger().handlers:
        logging.basicConfig()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    if not verbose:
        for name in ("absl", "tensorflow", ""):
            logging.getLogger(name).addFilter(ReadableLogs())
        logging.getLogger("apache_beam").setLevel(logging.ERROR)
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
    return timer


def _label(text: str):
    name, _, version = text.partition("=")
    if not name or not version.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=VERSION, got {text!r}")
    return name, int(version)


def _profile(name: str) -> configs.Profile:
    return configs.PROFILES[name]


def _cmd_run(args: argparse.Namespace) -> int:
    timer = setup_logging(args.verbose)
    from pipeline import local_runner, summary  # Heavy imports: only for the command that needs them.

    started = time.time()
    profile = _profile(args.profile)
    if args.precision:
        profile = dataclasses.replace(profile, precision=args.precision)
    print(f"Running pipeline '{configs.PIPELINE_NAME}', profile '{profile.name}', data {args.data}, "
          f"output {args.output}", flush=True)
    try:
        local_runner.run(
            profile, data_root=args.data, output_root=args.output, beam_args=args.beam_arg,
            strategy=args.strategy, seed=args.seed, min_accuracy=args.min_accuracy,
            schema_path=args.schema, enable_cache=not args.no_cache,
        )
    except Exception as e:  # pylint: disable=broad-except
        where = f" in component {timer.current}" if timer.current else ""
        print(f"\nRun FAILED{where} after {time.time() - started:.0f} s:\n{e}", file=sys.stderr)
        return 1
    result = summary.latest_run(configs.metadata_path(args.output))
    result.component_seconds = timer.seconds
    status = 0
    if result.evaluation_uri:
        try:
            result.report = _write_report(args.output, result)
        except Exception as e:  # pylint: disable=broad-except
            print(f"The run finished, but its report failed: {e}", file=sys.stderr)
            status = 1
    print(f"\nRun finished in {time.time() - started:.0f} s")
    print("\n".join(result.lines()))
    return status


def _write_report(output_root: str, run=None) -> str:
    from reports import run_report

    started = time.time()
    path = run_report.write_report(output_root, run)
    logging.getLogger("absl").info("Report written in %.0f s: %s", time.time() - started, path)
    return path


def _cmd_report(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from reports.run_report import ReportError

    try:
        path = _write_report(args.output)
    except ReportError as e:
        print(f"report failed: {e}", file=sys.stderr)
        return 1
    print(f"Report: {path}")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    from pipeline import kubeflow_runner

    path = kubeflow_runner.compile_pipeline(
        args.output_file, _profile(args.profile), data_root=args.data,
        pipeline_root=args.pipeline_root, image=args.image,
    )
    print(f"Kubeflow pipeline spec written to {path}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from serving.server import ModelServer

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT)
    server = ModelServer(args.model_base_path, args.model_name, host=args.host, rest_port=args.rest_port,
                         grpc_port=args.grpc_port, poll_seconds=args.poll_seconds,
                         keep_versions=args.keep_versions, labels=dict(args.label)).start()
    print(f"Serving '{args.model_name}' from {args.model_base_path}\n  REST  {server.rest_url}/v1/models/"
          f"{args.model_name}  (drawing page: {server.rest_url}/)\n  gRPC  {args.host}:{server.grpc_port}\n"
          "Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import grpc

    from serving.client import GrpcClient, RestClient, ServingError

    client = GrpcClient(args.grpc, args.model_name) if args.grpc else RestClient(args.server, args.model_name)
    try:
        for start in range(0, len(args.files), PREDICT_CHUNK):
            paths = args.files[start : start + PREDICT_CHUNK]
            pictures = []
            for path in paths:
                with open(path, "rb") as f:
                    pictures.append(f.read())
            for path, prediction in zip(paths, client.classify_pictures(pictures)):
                print(f"{path}: {prediction.digit} ({prediction.confidence:.1%})")
    except (OSError, ServingError) as e:
        print(f"predict failed: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"predict failed: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="digits", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the whole pipeline here with LocalDagRunner")
    run.add_argument("--profile", choices=sorted(configs.PROFILES), default=configs.DEFAULT_PROFILE,
                     help="smoke: small subset, minutes; standard: full MNIST, ~20 min; full: best accuracy")
    run.add_argument("--data", default=configs.DATA_ROOT,
                     help="folder with MNIST IDX files, a Kaggle train.csv, or PNGs in digit folders")
    run.add_argument("--output", default=configs.OUTPUT_ROOT,
                     help="artifacts, ML Metadata and the serving model directory go here")
    run.add_argument("--beam-arg", action="append", default=[], metavar="--FLAG=VALUE",
                     help="extra Beam pipeline arg, repeatable, e.g. --beam-arg=--direct_num_workers=2 "
                          "--beam-arg=--direct_running_mode=multi_processing")
    run.add_argument("--schema", default=configs.SCHEMA_PATH,
                     help="curated schema the data is validated against (schema.pbtxt)")
    run.add_argument("--strategy", choices=configs.STRATEGIES, default="default", help="tf.distribute strategy")
    run.add_argument("--seed", type=int, default=42, help="training seed")
    run.add_argument("--precision", choices=configs.PRECISIONS, default=None,
                     help=f"the CNN's dtype policy (default {configs.DEFAULT_PRECISION}; float32 on CPUs "
                          "without bfloat16 instructions, where bfloat16 is slow)")
    run.add_argument("--min-accuracy", type=float, default=None,
                     help="override the profile's accuracy bar for blessing")
    run.add_argument("--no-cache", action="store_true", help="rerun every component even if cached")
    run.add_argument("--verbose", action="store_true", help="show every library log line")
    run.set_defaults(func=_cmd_run)

    comp = commands.add_parser("compile", help="compile the pipeline for an orchestrator")
    comp.add_argument("--target", choices=["kubeflow"], required=True)
    comp.add_argument("--output-file", default=os.path.join(configs.OUTPUT_ROOT, "kubeflow", "digits_pipeline.json"))
    comp.add_argument("--profile", choices=sorted(configs.PROFILES), default=configs.DEFAULT_PROFILE)
    comp.add_argument("--data", default=configs.KUBEFLOW_DATA_ROOT,
                      help=f"data folder as the pipeline's pods see it (default {configs.KUBEFLOW_DATA_ROOT})")
    comp.add_argument("--pipeline-root", default=configs.KUBEFLOW_PIPELINE_ROOT,
                      help="where the cluster stores artifacts, e.g. gs://bucket/tfx")
    comp.add_argument("--image", default=configs.KUBEFLOW_IMAGE, help="container image with this project")
    comp.add_argument("--verbose", action="store_true")
    comp.set_defaults(func=_cmd_compile)

    serve = commands.add_parser("serve", help="serve pushed models with TF Serving's REST and gRPC APIs")
    serve.add_argument("--model-base-path", default=configs.serving_model_dir(configs.OUTPUT_ROOT),
                       help="folder of integer version folders, as the Pusher writes them")
    serve.add_argument("--model-name", default=configs.MODEL_NAME)
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind; 0.0.0.0 exposes the server")
    serve.add_argument("--rest-port", type=int, default=8501)
    serve.add_argument("--grpc-port", type=int, default=8500)
    serve.add_argument("--poll-seconds", type=float, default=2.0, help="how often to look for new versions")
    serve.add_argument("--keep-versions", type=int, default=2, help="newest versions kept loaded (for pinning)")
    serve.add_argument("--label", type=_label, action="append", default=[], metavar="NAME=VERSION",
                       help="version label, as TF Serving's version_labels, e.g. --label stable=1795441546")
    serve.set_defaults(func=_cmd_serve)

    report = commands.add_parser("report", help="(re)write the report of the newest evaluated run")
    report.add_argument("--output", default=configs.OUTPUT_ROOT, help="the run's --output folder")
    report.add_argument("--verbose", action="store_true")
    report.set_defaults(func=_cmd_report)

    pred = commands.add_parser("predict", help="classify picture files with a running server")
    pred.add_argument("files", nargs="+", help="PNG (or JPEG, GIF, BMP) files of digits")
    pred.add_argument("--server", default="http://127.0.0.1:8501", help="REST base URL")
    pred.add_argument("--grpc", default=None, metavar="HOST:PORT", help="use gRPC at this address instead")
    pred.add_argument("--model-name", default=configs.MODEL_NAME)
    pred.set_defaults(func=_cmd_predict)
    return top


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
