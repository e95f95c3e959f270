"""The errors the model server returns, each carrying its gRPC code and, through TF Serving's table, its
HTTP status: the data plane raises them, and the REST and gRPC front ends only translate.

Messages follow TF Serving's own wording where a client may match on them (for example `Servable not
found for request: Latest(digits)`); they never carry a stack trace.
"""

from http import HTTPStatus

import grpc

HTTP_STATUS = {
    grpc.StatusCode.OK: HTTPStatus.OK,
    grpc.StatusCode.CANCELLED: 499,  # "Client Closed Request", as TF Serving answers.
    grpc.StatusCode.UNKNOWN: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
}
"""TF Serving's status-to-HTTP mapping (`ToHTTPStatusCode` in its http_server.cc)."""


class ServingError(Exception):
    """A request the server answers with an error; subclasses fix the code."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    @property
    def http_status(self) -> int:
        return int(HTTP_STATUS.get(self.code, HTTPStatus.INTERNAL_SERVER_ERROR))

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgument(ServingError):
    """The request is wrong: malformed, of the wrong shape or type, or outside the schema's domain."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ServingError):
    """The request is well formed but cannot apply now (for example a label on a version not loaded)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(ServingError):
    """Unknown model or version (not loaded, failed, or unloaded)."""

    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(ServingError):
    """The request is larger than the server accepts (body or batch size)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServingError):
    """Overloaded (the batch queue is full) or shutting down: retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServingError):
    """The model did not answer within the request timeout."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(ServingError):
    """A part of TF Serving's API this server does not provide."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ServingError):
    """A failure of the server itself; the message is generic, the details are in the server log."""

    code = grpc.StatusCode.INTERNAL


class PayloadTooLarge(ResourceExhausted):
    """A REST body over the server's limit (HTTP's own status for it, rather than 429)."""

    @property
    def http_status(self) -> int:
        return int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)


class RequestTimeout(DeadlineExceeded):
    """A REST client too slow to send its request (HTTP's own status for it, rather than 504)."""

    @property
    def http_status(self) -> int:
        return int(HTTPStatus.REQUEST_TIMEOUT)


def from_http_status(status: int, message: str) -> ServingError:
    """The error a REST answer's status stands for, as a client sees it (the inverse of the table above;
    where several codes share a status, the most common one)."""
    preferred = (InvalidArgument, NotFound, ResourceExhausted, Unavailable, DeadlineExceeded, Unimplemented)
    for error in preferred:
        if error("").http_status == status:
            return error(message)
    if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        return PayloadTooLarge(message)
    if status == HTTPStatus.REQUEST_TIMEOUT:
        return RequestTimeout(message)
    return Internal(message)
