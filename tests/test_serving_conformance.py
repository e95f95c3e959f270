"""`serving.conformance`: the tree TF Serving's test suite expects (the server shim and the checkout's
test data), and absltest's report read into a per-test table; the suite itself needs a checkout of
tensorflow/serving and is run by hand (`python -m serving.conformance --serving-checkout PATH`)."""

import os
import subprocess

import pytest

from serving import conformance

REPORT = """<?xml version="1.0"?>
<testsuites><testsuite name="TensorflowModelServerTest" tests="4">
<testcase name="testGetModelStatus" classname="TensorflowModelServerTest" status="run" result="completed"/>
<testcase name="testRegress" classname="TensorflowModelServerTest" status="run" result="completed">
  <failure message="AssertionError: &apos;&apos; != &apos;regress_x_to_y&apos;&#10;+ regress_x_to_y"
    type="AssertionError"/>
</testcase>
<testcase name="testPredictUDS" classname="TensorflowModelServerTest" status="run" result="completed">
  <error type="_InactiveRpcError" message="&lt;_InactiveRpcError of RPC that terminated with:&#10;&#9;status =
StatusCode.UNAVAILABLE&#10;&#9;details = &quot;failed to connect&quot;&#10;&gt;"/>
</testcase>
<testcase name="testPredictOnTfLite" classname="TensorflowModelServerTest" status="run" result="suppressed">
  <skipped message="TF Lite"/>
</testcase>
</testsuite></testsuites>
"""


def test_the_report_becomes_a_table_with_the_first_line_of_each_reason(tmp_path):
    report = tmp_path / "results.xml"
    report.write_text(REPORT)
    rows = conformance.results(str(report))
    assert rows == [
        ("testGetModelStatus", "passed", ""),
        ("testRegress", "failed", "AssertionError: '' != 'regress_x_to_y'"),
        ("testPredictUDS", "error", "UNAVAILABLE: failed to connect"),
        ("testPredictOnTfLite", "skipped", "TF Lite"),
    ]
    text = conformance.table(rows)
    assert text.splitlines()[-1] == "1 of 4 passed; 1 failed, 1 error, 1 skipped"
    assert conformance.table(rows[:1]).splitlines()[-1] == "1 of 1 passed"
    assert text.splitlines()[2].split()[:3] == ["testRegress", "failed", "AssertionError:"]


def test_the_source_tree_holds_a_shim_that_runs_this_server_and_the_checkouts_test_data(tmp_path):
    checkout = tmp_path / "serving"
    (checkout / conformance.TESTDATA / "saved_model_half_plus_two_cpu").mkdir(parents=True)
    srcdir = conformance.source_tree(str(checkout), str(tmp_path / "run"))
    package = os.path.join(srcdir, "tf_serving", "tensorflow_serving")
    assert os.path.isdir(os.path.join(package, "servables", "tensorflow", "testdata", "saved_model_half_plus_two_cpu"))
    shim = os.path.join(package, "model_servers", "tensorflow_model_server")
    assert os.access(shim, os.X_OK)
    python = tmp_path / "python"  # stands in for the interpreter: prints what it was run with
    python.write_text('#!/bin/sh\necho "$PYTHONPATH" "$@"\n')
    python.chmod(0o755)
    conformance.write_shim(os.path.dirname(shim), str(python))
    done = subprocess.run([shim, "--port=1", "--model_name=a b"], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[0] == f"{conformance.REPOSITORY} -m serving --port=1 --model_name=a b"


def test_a_folder_that_is_no_checkout_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="is not a tensorflow/serving checkout"):
        conformance.run(str(tmp_path), [], timeout=10, log=None)
