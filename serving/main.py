"""The model server's command line, `python -m serving` (and `digits serve`, which shares it): TF
Serving's flags, derived from the `ServerOptions` fields that declare one, -> options -> a server that
runs until SIGINT or SIGTERM.

    python -m serving --model_base_path DIR [--model_name digits] [--rest_api_port 8501] [--port 8500]
    python -m serving --model_config_file FILE [--enable_batching --batching_parameters_file FILE]

The server itself is imported only when it starts, so building the parser stays cheap.
"""

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Dict, Mapping, Optional, Sequence

from serving import config

DESCRIPTION = "Serve SavedModels with TF Serving's REST and gRPC APIs (TF Serving's flag names and defaults)."
LOG_FORMAT, LOG_DATE_FORMAT = "%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"


def add_flags(parser: argparse.ArgumentParser, defaults: Optional[Mapping[str, Any]] = None) -> None:
    """Adds one flag per `ServerOptions` field that declares one; `defaults` replaces some fields'
    defaults (`digits serve` serves the pipeline's output folder unless told otherwise)."""
    defaults = dict(defaults or {})
    unknown = set(defaults) - {field.name for field, _ in config.flags()}
    if unknown:
        raise ValueError(f"not serve flags: {sorted(unknown)}")
    for field, spec in config.flags():
        default = defaults.get(field.name, field.default)
        names = [f"--{field.name}", *spec.aliases]
        if isinstance(field.default, bool):
            # A switch, which also takes TF Serving's `--name=true|false`.
            parser.add_argument(
                *names,
                dest=field.name,
                nargs="?",
                const=True,
                type=config.true_false,
                default=default,
                metavar="true|false" if field.default else None,
                help=spec.help,
            )
            continue
        parse = spec.parse or (type(field.default) if field.default is not None else str)
        parser.add_argument(*names, dest=field.name, type=parse, default=default, metavar=spec.metavar, help=spec.help)
    tf_serving = parser.add_argument_group(
        "TF Serving's flags not implemented here",
        "accepted so that a TF Serving deployment starts; each one given is logged as ignored, except "
        f"{', '.join('--' + name for name in config.REFUSED_FLAGS)}, which stop the start-up unless left at "
        "their default",
    )
    for name in sorted({*config.NOT_IMPLEMENTED_FLAGS, *config.REFUSED_FLAGS}):
        why = config.REFUSED_FLAGS.get(name) or config.NOT_IMPLEMENTED_FLAGS[name] or "ignored"
        tf_serving.add_argument(
            f"--{name}",
            dest=f"{_TF_SERVING}{name}",
            nargs="?",
            const="true",
            default=argparse.SUPPRESS,
            metavar="VALUE",
            help=why,
        )


_TF_SERVING = "tf_serving_flag_"
"""Prefix of the parsed-flag attributes that hold TF Serving's flags not implemented here."""


def tf_serving_flags(args: argparse.Namespace) -> Dict[str, str]:
    """The TF Serving flags not implemented here that were given: name -> text."""
    return {name[len(_TF_SERVING) :]: value for name, value in vars(args).items() if name.startswith(_TF_SERVING)}


def options_from_flags(args: argparse.Namespace) -> config.ServerOptions:
    """The parsed flags -> resolved server options (config files read: `config.ConfigError` if wrong)."""
    for warning in config.check_tf_serving_flags(tf_serving_flags(args)):
        logging.getLogger(__name__).warning(warning)
    values = {field.name: getattr(args, field.name) for field, _ in config.flags()}
    return config.resolve(config.ServerOptions(**values))


def serve(args: argparse.Namespace) -> int:
    """Starts the server the flags describe, prints where it listens, and serves until SIGINT or
    SIGTERM, then stops gracefully (requests in flight finish). 1 if it could not start."""
    from serving.server import ModelServer

    try:
        options = options_from_flags(args)
        server = ModelServer(options).start()
    except (config.ConfigError, OSError) as e:
        print(f"serve failed: {e}", file=sys.stderr)
        return 1
    rest = f"{server.rest_url}/v1/models/<name>  (drawing page: {server.rest_url}/, API: {server.rest_url}/docs)"
    print(
        f"Serving {', '.join(server.core.model_names)}\n  REST  {rest if server.rest_port else 'off'}\n"
        f"  gRPC  {f'{options.host}:{server.grpc_port}' if server.grpc_port else 'off'}\n"
        "Ctrl-C (or SIGTERM) stops, finishing the requests in flight.",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


def parser(prog: str = "python -m serving") -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_flags(flags)
    flags.add_argument("--verbose", action="store_true", help="log at DEBUG level, TensorFlow's native logs included")
    return flags


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT
    )
    return serve(args)
