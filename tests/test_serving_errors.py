"""`serving.errors`: each error's gRPC code and, through TF Serving's table, its HTTP status."""

import grpc
import pytest

from serving import errors


@pytest.mark.parametrize(
    "error, http_status, code",
    [
        (errors.InvalidArgument, 400, grpc.StatusCode.INVALID_ARGUMENT),
        (errors.FailedPrecondition, 400, grpc.StatusCode.FAILED_PRECONDITION),
        (errors.NotFound, 404, grpc.StatusCode.NOT_FOUND),
        (errors.ResourceExhausted, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.PayloadTooLarge, 413, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.RequestTimeout, 408, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.DeadlineExceeded, 504, grpc.StatusCode.DEADLINE_EXCEEDED),
        (errors.Unavailable, 503, grpc.StatusCode.UNAVAILABLE),
        (errors.Unimplemented, 501, grpc.StatusCode.UNIMPLEMENTED),
        (errors.Internal, 500, grpc.StatusCode.INTERNAL),
    ],
)
def test_each_error_carries_its_grpc_code_and_tf_servings_http_status(error, http_status, code):
    raised = error("what went wrong")
    assert (raised.http_status, raised.code, raised.message) == (http_status, code, "what went wrong")
    assert errors.from_http_status(http_status, "m").http_status == http_status  # What a REST client sees.
