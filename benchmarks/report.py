"""How every benchmark command ends: its result printed as JSON, and its headline figures written as
records under `benchmarks/results/`, from which `benchmarks.results` generates the benchmarks page.

Light to import (no TensorFlow): the benchmarks that time TensorFlow's start import it first.
"""

import json
from typing import Any, Dict, Optional, Sequence

from benchmarks import results


def recorded(
    topic: str,
    measurements: Dict[str, Dict[str, Any]],
    module: str,
    argv: Optional[Sequence[str]],
    details: Optional[Dict[str, Any]] = None,
    note: str = "",
) -> Dict[str, Any]:
    """Writes each measurement's figures (name -> figures) as a record under `topic`, measured by
    `module` run with `argv` (see `results.command`); prints them with `details` (what the records
    leave out: per-round and per-request figures, paths) and returns both, with the machine and the
    records' paths. The names are stable: a later run of the same name is a run of the same measurement."""
    command = results.command(module, argv)
    paths = [results.write(topic, name, figures, command, note) for name, figures in measurements.items()]
    result = {"topic": topic, "machine": results.machine(), "records": paths, **measurements, **(details or {})}
    print(json.dumps(result, indent=2, default=str))
    return result
