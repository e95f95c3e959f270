"""One process per benchmarked variant, taking turns, so that every variant sees the same machine.

Thread settings are fixed when TensorFlow starts, so variants that differ in them need their own
process; and alternating short turns spreads this shared machine's slow moments over all variants.
"""

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, Iterable, Tuple

READY = "ready"
STOP = "stop"

Workers = Dict[str, Tuple[multiprocessing.process.BaseProcess, Connection]]


def start(target: Callable, variants: Iterable[str], *args) -> Workers:
    """Calls `target(variant, *args, connection)` in a spawned process per variant and returns once
    each has sent READY. They start together: importing TensorFlow is slow, and nothing is timed yet."""
    context = multiprocessing.get_context("spawn")
    workers: Workers = {}
    try:
        for variant in variants:
            ours, theirs = context.Pipe()
            process = context.Process(target=target, args=(variant, *args, theirs), daemon=True)
            process.start()
            theirs.close()  # The child's end only in the child: if it dies, our reads end instead of waiting.
            workers[variant] = (process, ours)
        for variant in workers:
            if receive(workers, variant) != READY:
                raise RuntimeError(f"variant {variant} did not start")
    except BaseException:
        stop(workers)
        raise
    return workers


def receive(workers: Workers, variant: str) -> Any:
    """The variant's next message; an error naming it if its process has died (its own error is above)."""
    process, connection = workers[variant]
    try:
        return connection.recv()
    except (EOFError, ConnectionError) as error:
        process.join(timeout=10)
        ended = f"variant {variant}: its process ended (exit code {process.exitcode}); see its error above"
        raise RuntimeError(ended) from error


def ask(workers: Workers, variant: str, message: Any) -> Any:
    """Sends `message` to the variant and returns its answer (see `receive`)."""
    try:
        workers[variant][1].send(message)
    except ConnectionError:
        pass  # The process is gone: `receive` says so.
    return receive(workers, variant)


def stop(workers: Workers) -> None:
    for process, connection in workers.values():
        if process.is_alive():
            try:
                connection.send(STOP)
            except ConnectionError:
                pass
        process.join(timeout=60)
        if process.is_alive():
            process.terminate()
