"""Keyward's refusals as exceptions, each carrying the broker's stable error code.

The codes are listed in docs/errors.md of the Keyward repository (generated from src/sdk/codes.ts).
Switch on ``err.code``; the exception class says what kind of answer it is.
"""

from __future__ import annotations

from typing import Any, Optional


class KeywardError(Exception):
    """An error answered by the broker (or, with status 0, by this client before any answer)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        reason: Optional[str] = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"{message}: {reason}" if reason else message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={str(self)!r})"


class Unauthenticated(KeywardError):
    """The client's credentials or token were refused (401): invalid_client, invalid_token, token_expired..."""


class Denied(KeywardError):
    """Refused by policy (403) or a spent budget (429): method_not_granted, path_not_granted, deny_rule..."""


class Revoked(KeywardError):
    """The token was revoked, or the kill switch froze every token: stop rather than retry."""


class NeedsApproval(KeywardError):
    """A human must approve the token request first; asking again with the same grant polls it."""

    def __init__(self, approval_id: str, expires_at: Optional[str]) -> None:
        super().__init__(202, "approval_required", "a human must approve this token request", f"approval {approval_id} is pending")
        self.approval_id = approval_id
        self.expires_at = expires_at


class Unavailable(KeywardError):
    """The broker or the upstream could not answer (5xx): database_unavailable, upstream_timeout..."""


_REVOKED_CODES = frozenset({"token_revoked", "kill_switch_engaged"})


def error_from(status: int, body: Any, broker_code: Optional[str] = None) -> KeywardError:
    """The typed error for an error response: Keyward's ``{"error": {"code", ...}}`` or RFC 6749's.

    ``broker_code`` is the response's ``keyward-error`` header: a refusal the broker answered in the
    upstream's protocol (GraphQL errors, a JSON-RPC error, AWS XML) carries its code only there.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # RFC 6749 section 5.2, from the OAuth endpoints
        description = body.get("error_description")
        return _typed(status, error, description if isinstance(description, str) else error, None, None)
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        if broker_code:
            return _typed(status, broker_code, *_native_fields(body, broker_code), None)
        return _typed(status, f"http_{status}", f"the broker answered {status}", None, None)
    message = error.get("message") if isinstance(error.get("message"), str) else error["code"]
    reason = error.get("reason") if isinstance(error.get("reason"), str) else None
    return _typed(status, error["code"], message, reason, error.get("details"))


def _native_fields(body: Any, broker_code: str) -> tuple:
    """The message and reason of a refusal in a GraphQL or JSON-RPC body, as the TypeScript SDK reads them."""
    first = body[0] if isinstance(body, list) and body else body
    message: Any = None
    reason: Any = None
    if isinstance(first, dict):
        errors = first.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            message = errors[0].get("message")
            extensions = errors[0].get("extensions")
            reason = extensions.get("reason") if isinstance(extensions, dict) else None
        elif isinstance(first.get("error"), dict):
            message = first["error"].get("message")
            data = first["error"].get("data")
            reason = data.get("reason") if isinstance(data, dict) else None
    return (
        message if isinstance(message, str) else f"the broker refused the call ({broker_code})",
        reason if isinstance(reason, str) else None,
    )


def _typed(status: int, code: str, message: str, reason: Optional[str], details: Any) -> KeywardError:
    if code in _REVOKED_CODES:
        return Revoked(status, code, message, reason, details)
    if status == 401:
        return Unauthenticated(status, code, message, reason, details)
    if status in (403, 429):
        return Denied(status, code, message, reason, details)
    if status >= 500:
        return Unavailable(status, code, message, reason, details)
    return KeywardError(status, code, message, reason, details)
