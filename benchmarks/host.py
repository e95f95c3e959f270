"""The machine and the date every benchmark's result names. Light to import: the benchmarks that time
TensorFlow's start import it before TensorFlow."""

import json
import os
import platform
import time
from typing import Any, Dict


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def reported(fields: Dict[str, Any]) -> Dict[str, Any]:
    """A benchmark's result: the machine, the date and `fields`, printed as JSON and returned."""
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), **fields}
    print(json.dumps(result, indent=2))
    return result
