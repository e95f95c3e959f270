"""Readable logs for the command line: component start/end and this project's own progress, warnings,
and little else; `--verbose` shows every library's lines."""

import logging
import os
import re
import time
import warnings
from typing import Dict, Optional

from absl import logging as absl_logging

LOG_FORMAT, LOG_DATE_FORMAT = "%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWN_PACKAGES = ("models", "components", "pipeline", "reports", "serving", "cli")
_COMPONENT_EVENT = re.compile(r"Component (\S+) is (running|finished)\.")
_KNOWN_NOISE = re.compile(
    r"[Dd]eprecat|property_predicate is not supported|crcmod package not found"
    r"|does not have payload_format custom property"  # TFX 1.16 on Transform's output; harmless.
    r"|AutoGraph could not transform <function create_autocast_variable"  # Mixed precision; harmless.
)


def quiet_native_logs() -> None:
    """Start-up chatter of TensorFlow's C++ side and of Google client libraries is printed at import
    time, before any logging can be configured: silenced here, before those imports."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


class ComponentTimer(logging.Filter):
    """Notes when each component starts and ends, from LocalDagRunner's own log lines."""

    def __init__(self) -> None:
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

    def __init__(self) -> None:
        super().__init__()
        self._own = tuple(os.path.join(PROJECT_ROOT, p) + os.sep for p in OWN_PACKAGES)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return not _KNOWN_NOISE.search(record.getMessage())
        return record.pathname.startswith(self._own) or bool(_COMPONENT_EVENT.search(record.getMessage()))


def setup_logging(verbose: bool) -> ComponentTimer:
    """Filters sit on the loggers, not on handlers, so they hold whichever handler a library installs."""
    absl_logging.set_verbosity(absl_logging.INFO)
    timer = ComponentTimer()
    logging.getLogger("absl").addFilter(timer)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO)
    logging.getLogger().setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    if not verbose:
        for name in ("absl", "tensorflow", ""):
            logging.getLogger(name).addFilter(ReadableLogs())
        logging.getLogger("apache_beam").setLevel(logging.ERROR)
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
    return timer
