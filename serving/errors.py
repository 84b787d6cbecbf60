"""Domain errors of the price API. `serving.app` maps each to an HTTP status in one place."""

from __future__ import annotations


class ServingError(Exception):
    status_code = 500
    title = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoModelError(ServingError):
    """No model has been approved yet, so there is nothing to price with."""

    status_code = 503
    title = "no model available"


class PayloadTooLargeError(ServingError):
    """The request is over a limit: bytes of the body, or rows of a batch."""

    status_code = 413
    title = "payload too large"


class ResponseTooLargeError(ServingError):
    """The answer would not fit through Lambda's synchronous response limit."""

    status_code = 413
    title = "response too large"


class UnsupportedMediaTypeError(ServingError):
    status_code = 415
    title = "unsupported media type"


class InvalidRowsError(ServingError):
    """Rows of a batch break the diamond schema; `problems` names each row and field."""

    status_code = 422
    title = "invalid rows"

    def __init__(self, message: str, problems: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.problems = problems


class NotFoundError(ServingError):
    status_code = 404
    title = "not found"
