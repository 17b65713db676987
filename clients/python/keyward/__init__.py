"""Keyward's Python client: ``from keyward import Keyward``. Standard library only."""

from .client import BROKER_ERROR_HEADER, Keyward, Response, Token
from .errors import Denied, KeywardError, NeedsApproval, Revoked, Unauthenticated, Unavailable, error_from

__all__ = [
    "BROKER_ERROR_HEADER",
    "Denied",
    "Keyward",
    "KeywardError",
    "NeedsApproval",
    "Response",
    "Revoked",
    "Token",
    "Unauthenticated",
    "Unavailable",
    "error_from",
]
