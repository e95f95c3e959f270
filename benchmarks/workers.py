"""One process per benchmarked variant, taking turns, so that every variant sees the same machine.

Thread settings are fixed when TensorFlow starts, so variants that differ in them need their own
process; and alternating short turns spreads this shared machine's slow moments over all variants.
"""

import multiprocessing
from multiprocessing.connection import Connection
from typing import Callable, Dict, Iterable, Tuple

READY = "ready"
STOP = "stop"

Workers = Dict[str, Tuple[multiprocessing.process.BaseProcess, Connection]]


def start(target: Callable, variants: Iterable[str], *args) -> Workers:
    """Calls `target(variant, *args, connection)` in a spawned process per variant and returns once
    each has sent READY. They start together: importing TensorFlow is slow, and nothing is timed yet."""
    context = multiprocessing.get_context("spawn")
    workers: Workers = {}
    for variant in variants:
        ours, theirs = context.Pipe()
        process = context.Process(target=target, args=(variant, *args, theirs), daemon=True)
        process.start()
        workers[variant] = (process, ours)
    for variant, (_, connection) in workers.items():
        if connection.recv() != READY:
            raise RuntimeError(f"variant {variant} did not start")
    return workers


def stop(workers: Workers) -> None:
    for process, connection in workers.values():
        if process.is_alive():
            connection.send(STOP)
        process.join(timeout=60)
