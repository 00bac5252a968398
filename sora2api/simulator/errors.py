"""The backend's one error envelope, and the exception that carries it to the middleware."""

from __future__ import annotations

from typing import Any

# Verbatim strings from the backend contract (section 1.3); clients match on them.
MSG_INVALIDATED = "Your authentication token has been invalidated. Please try signing in again."
MSG_UNPARSEABLE = "Could not parse your authentication token. Please try signing in again."
MSG_EXPIRED = "Your authentication token has expired. Please try signing in again."  # assumption
MSG_SENTINEL = (
    "Hmmm something didn't look right with your request. Please try again later or visit "
    "https://help.openai.com if this issue persists."
)
MSG_INVALID = "Unable to process request"
MSG_HEAVY_LOAD = "We're under heavy load, please try again later."
MSG_DEACTIVATED = (  # assumption: the wording OpenAI uses for deleted/deactivated accounts
    "You do not have an account because it has been deleted or deactivated. If you believe this "
    "was an error, please contact us through our help center at help.openai.com."
)


class SimError(Exception):
    """An HTTP error the simulated backend answers with the standard envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type_: str = "invalid_request_error",
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_
        self.param = param

    def body(self) -> dict[str, Any]:
        """The JSON body, exactly as the real backend shapes it."""
        return envelope(
            self.status, self.message, code=self.code, type_=self.type, param=self.param
        )


def envelope(
    status: int,
    message: str,
    *,
    code: str | None = None,
    type_: str = "invalid_request_error",
    param: str | None = None,
) -> dict[str, Any]:
    """Build `{"error": {message, type, param, code}, "status": N}`."""
    return {
        "error": {"message": message, "type": type_, "param": param, "code": code},
        "status": status,
    }


def invalid(message: str = MSG_INVALID, *, param: str | None = None) -> SimError:
    """400 invalid_request, the backend's answer to any payload it dislikes."""
    return SimError(400, message, code="invalid_request", param=param)


def not_found(message: str = "Not found") -> SimError:
    """404 with the standard envelope."""
    return SimError(404, message, code="not_found")
