"""API errors: one class per documented code, rendered as the failure envelope.

ApiError                       (status, code, message)
+-- BadRequest          400    E013 malformed JSON, missing/mistyped/unknown field
+-- InvalidCapacity     400    E047
+-- Unauthenticated     401    E056 no or non-Bearer Authorization
+-- UnknownKey          401    E055 unknown or revoked key
+-- SecretKeyRequired   401    E015
+-- LockNotOwned        403    E059
+-- RouteNotFound       404    E002 (405 for a known path, wrong method)
+-- SlotNotFound        404    E025
+-- BookingNotFound     404    E048
+-- ResourceNotFound    404    E052
+-- BodyTooLarge        413    E102
+-- HeadersTooLarge     431    E105 (answered by service/http_protocol.py)
+-- Unprocessable       422    E022 E023 E024 E044 E045 E046 E049 E050 E051
|                              E058 E060 E061 E100 E101 E104
+-- RateLimited         429    E062 (Retry-After)
+-- InternalError       500    E001
+-- StoreUnavailable    503    E103 (Retry-After)
"""

from __future__ import annotations


class ApiError(Exception):
    """An error the client is told about in the failure envelope."""

    status = 500
    code = "E001"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(ApiError):
    status, code = 400, "E013"


class InvalidCapacity(ApiError):
    status, code = 400, "E047"


class Unauthenticated(ApiError):
    status, code = 401, "E056"


class UnknownKey(ApiError):
    status, code = 401, "E055"


class SecretKeyRequired(ApiError):
    status, code = 401, "E015"


class LockNotOwned(ApiError):
    status, code = 403, "E059"


class RouteNotFound(ApiError):
    status, code = 404, "E002"


class MethodNotAllowed(RouteNotFound):
    status = 405


class SlotNotFound(ApiError):
    status, code = 404, "E025"


class BookingNotFound(ApiError):
    status, code = 404, "E048"


class ResourceNotFound(ApiError):
    status, code = 404, "E052"


class BodyTooLarge(ApiError):
    status, code = 413, "E102"


class HeadersTooLarge(ApiError):
    status, code = 431, "E105"


class Unprocessable(ApiError):
    """A well-formed request that the current state refuses; `code` is per instance."""

    status = 422

    def __init__(self, code: str, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.code = code


class RateLimited(ApiError):
    status, code = 429, "E062"


class InternalError(ApiError):
    status, code = 500, "E001"


class StoreUnavailable(ApiError):
    status, code = 503, "E103"
