"""TF Serving's own model-server test suite run against this server, as TF Serving runs it.

    python -m serving.conformance --serving-checkout PATH [TEST ...]

PATH is a checkout of tensorflow/serving, read in place (this tool never downloads it). The suite,
`tensorflow_serving/model_servers/tensorflow_model_server_test.py`, starts the binary
`$TEST_SRCDIR/tf_serving/tensorflow_serving/model_servers/tensorflow_model_server` with TF Serving's
flags and reads its test SavedModels under `$TEST_SRCDIR/tf_serving/tensorflow_serving/servables/
tensorflow/testdata`. Here that tree is built in a temporary folder: the binary is a shim that execs
`python -m serving` with the flags it is given, and the test data is a link into the checkout. The
suite runs under absltest, as Bazel runs it; its test helpers (`tensorflow_serving.model_servers.
test_util`), which the `tensorflow-serving-api` wheel does not ship, are read from the checkout.
Prints one line per test (passed, failed, error or skipped, with the first line of the reason) and
exits 0 when every test selected passed.

TEST names a test method (`testRegress`) or `TensorflowModelServerTest.testRegress`; none runs all.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from typing import List, Optional, Sequence, Tuple

SUITE = "tensorflow_serving/model_servers/tensorflow_model_server_test.py"
TESTDATA = "tensorflow_serving/servables/tensorflow/testdata"
TEST_CLASS = "TensorflowModelServerTest"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_BOOTSTRAP = """
import os, runpy, sys
import tensorflow_serving
from tensorflow.python.platform import flags
flags.os = os
tensorflow_serving.__path__.append(sys.argv[1])
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""Runs the suite with the checkout's `tensorflow_serving` folder as a second home of the installed
`tensorflow_serving` package, so that `tensorflow_serving.apis` stays the wheel's and
`tensorflow_serving.model_servers.test_util` is the checkout's. `test_tf_text` finds its model through
`flags.os.environ`, and TensorFlow 2.16's `flags` module does not import `os`: the bootstrap gives it
one."""


def write_shim(folder: str, python: str = sys.executable) -> str:
    """An executable `tensorflow_model_server` in `folder` that runs this repository's server."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tensorflow_model_server")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "#!/bin/sh\n"
            f"PYTHONPATH={shlex.quote(REPOSITORY)}${{PYTHONPATH:+:$PYTHONPATH}} "
            f'exec {shlex.quote(python)} -m serving "$@"\n'
        )
    os.chmod(path, 0o755)
    return path


def source_tree(checkout: str, root: str) -> str:
    """`$TEST_SRCDIR` under `root` as the suite expects it: the shim, and the checkout's test data."""
    srcdir = os.path.join(root, "srcdir")
    package = os.path.join(srcdir, "tf_serving", "tensorflow_serving")
    write_shim(os.path.join(package, "model_servers"))
    testdata = os.path.join(package, os.path.relpath(TESTDATA, "tensorflow_serving"))
    os.makedirs(os.path.dirname(testdata), exist_ok=True)
    os.symlink(os.path.join(checkout, TESTDATA), testdata)
    return srcdir


def results(xml_path: str) -> List[Tuple[str, str, str]]:
    """absltest's XML report -> (test, outcome, first line of the reason), in the order run."""
    rows = []
    for case in ElementTree.parse(xml_path).getroot().iter("testcase"):
        outcome, reason = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                reason = _reason(found.get("message") or found.text or "")
                break
        if case.get("result") == "suppressed" or case.get("status") == "notrun":
            outcome = "skipped"
        rows.append((case.get("name", "?"), outcome, reason))
    return rows


def _reason(text: str) -> str:
    """The first line of a failure, or for a gRPC error its status and details."""
    rpc = re.search(r"status = StatusCode\.(\w+)\s+details = \"(.*?)\"\n", text, re.S)
    if rpc:
        return f"{rpc.group(1)}: {rpc.group(2)}"
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def table(rows: Sequence[Tuple[str, str, str]], width: int = 110) -> str:
    name_width = max((len(name) for name, _, _ in rows), default=4)
    lines = [f"{'test':<{name_width}}  {'outcome':<7}  reason"]
    lines += [f"{name:<{name_width}}  {outcome:<7}  {reason[:width]}" for name, outcome, reason in rows]
    counts = {
        kind: sum(1 for _, outcome, _ in rows if outcome == kind) for kind in ("passed", "failed", "error", "skipped")
    }
    others = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n and kind != "passed")
    lines.append(f"{counts['passed']} of {len(rows)} passed" + (f"; {others}" if others else ""))
    return "\n".join(lines)


def run(checkout: str, tests: Sequence[str], timeout: float, log: Optional[str]) -> List[Tuple[str, str, str]]:
    """Runs the suite (or the named tests) against this server; the suite's own output goes to `log`
    (or is discarded)."""
    checkout = os.path.abspath(checkout)
    suite = os.path.join(checkout, SUITE)
    if not os.path.isfile(suite):
        raise SystemExit(f"{checkout} is not a tensorflow/serving checkout: {SUITE} is missing")
    with tempfile.TemporaryDirectory(prefix="tf-serving-suite-") as root:
        tmpdir = os.path.join(root, "tmp")
        os.makedirs(tmpdir)
        xml_path = os.path.join(root, "results.xml")
        env = dict(
            os.environ,
            TEST_SRCDIR=source_tree(checkout, root),
            TEST_TMPDIR=tmpdir,
            XML_OUTPUT_FILE=xml_path,
            TF_CPP_MIN_LOG_LEVEL="2",
            # The suite's Keras tests are written for tf.keras 2 (an `Input(name="x")` names the
            # signature's input); TensorFlow 2.16's own tf.keras is Keras 3, which names it `inputs`.
            TF_USE_LEGACY_KERAS="1",
        )
        selected = [name if "." in name else f"{TEST_CLASS}.{name}" for name in tests]
        command = [
            sys.executable,
            "-c",
            _BOOTSTRAP,
            os.path.join(checkout, "tensorflow_serving"),
            suite,
            f"--test_tmpdir={tmpdir}",
            f"--xml_output_file={xml_path}",
            *selected,
        ]
        with open(log or os.devnull, "w", encoding="utf-8") as out:
            # A session of its own, so that the servers the suite starts go when it is stopped.
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                raise SystemExit(f"the suite did not finish within {timeout:.0f} s") from None
            finally:
                # The suite kills its servers at exit; any a crashed suite left behind go with its group.
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass
        if not os.path.exists(xml_path):
            raise SystemExit(f"the suite exited with {proc.returncode} and wrote no report (see --log)")
        return results(xml_path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.conformance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--serving-checkout", required=True, metavar="PATH", help="a checkout of tensorflow/serving")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the whole suite may take")
    parser.add_argument("--log", help="write the suite's output (and the servers') to this file")
    parser.add_argument("tests", nargs="*", help="test methods to run (default: all)")
    args = parser.parse_args(argv)
    rows = run(args.serving_checkout, args.tests, args.timeout, args.log)
    print(table(rows))
    return 0 if rows and all(outcome in ("passed", "skipped") for _, outcome, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
