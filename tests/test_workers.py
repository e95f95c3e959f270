"""The benchmarks' worker processes: a variant whose process dies is an error naming it, not a hang."""

import threading

import pytest

from benchmarks import workers


def _echo(variant, connection):
    connection.send(workers.READY)
    while (message := connection.recv()) != workers.STOP:
        connection.send(f"{variant} {message}")


def _fails_to_start(variant, connection):
    raise ValueError(f"{variant} cannot build its model")


def _dies_on_second_turn(variant, connection):
    connection.send(workers.READY)
    connection.send(connection.recv())
    connection.recv()
    raise SystemExit(3)


def test_workers_answer_in_turn_and_stop():
    running = workers.start(_echo, ["a", "b"])
    try:
        assert [workers.ask(running, v, "go") for v in running] == ["a go", "b go"]
    finally:
        workers.stop(running)
    assert not any(process.is_alive() for process, _ in running.values())


def test_a_variant_that_dies_before_it_is_ready_is_an_error_naming_it():
    """The parent holds only its own end of each pipe, so a child's death ends its wait for READY."""
    errors: list = []

    def start() -> None:
        try:
            workers.start(_fails_to_start, ["broken"])
        except RuntimeError as error:
            errors.append(str(error))

    waiting = threading.Thread(target=start, daemon=True)
    waiting.start()
    waiting.join(timeout=60)
    assert not waiting.is_alive(), "start() still waits for a process that has died"
    assert len(errors) == 1 and errors[0].startswith("variant broken: its process ended (exit code 1)")


def test_a_variant_that_dies_mid_race_is_an_error_naming_it():
    running = workers.start(_dies_on_second_turn, ["flaky"])
    try:
        assert workers.ask(running, "flaky", 1) == 1
        with pytest.raises(RuntimeError, match=r"variant flaky: its process ended \(exit code 3\)"):
            workers.ask(running, "flaky", 2)
    finally:
        workers.stop(running)
