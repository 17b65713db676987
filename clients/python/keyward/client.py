"""A Keyward agent client on the standard library only: tokens by OAuth client credentials, refreshed
before they expire, and calls through the broker's proxy that raise typed errors on Keyward's refusals
while handing the upstream's own answers back as they are."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Union

from .errors import Denied, KeywardError, NeedsApproval, Unauthenticated, error_from

#: The header the broker sets on its own error responses and strips from upstream ones: through the
#: proxy it tells Keyward's refusal from the upstream's own error.
BROKER_ERROR_HEADER = "keyward-error"

#: Refresh a token when less than this many seconds of its life are left (or a fifth of its life, if shorter).
DEFAULT_REFRESH_MARGIN_SECONDS = 30


@dataclass(frozen=True)
class Token:
    # Kept out of repr: a Token in a log line or in a traceback's locals must not print the bearer token.
    access_token: str = field(repr=False)
    expires_at: float
    scope: str


@dataclass(frozen=True)
class Response:
    """The upstream's answer, as the proxy returned it."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def _form_encode(value: str) -> str:
    # RFC 6749 section 2.3.1: client credentials are form-encoded before Basic's base64.
    return urllib.parse.quote_plus(value, safe="")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would send the Authorization header wherever the upstream points: never follow one.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Keyward:
    """One agent's access to one grant.

    >>> kw = Keyward("https://keyward.internal", client_id, client_secret, grant="deploy-staging")
    >>> kw.call("hosting-staging", "GET", "/v1/projects").json()
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        grant: str,
        *,
        refresh_margin_seconds: Optional[float] = None,
        timeout_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be the broker's http(s) URL")
        self.url = url.rstrip("/")
        self.grant = grant
        self._basic = "Basic " + base64.b64encode(f"{_form_encode(client_id)}:{_form_encode(client_secret)}".encode()).decode()
        self._margin = refresh_margin_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._token: Optional[Token] = None
        self._lifetime = 0.0
        #: The approval a human must give before the grant's token is issued: the next token() polls it.
        self._pending: Optional[str] = None
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirect)

    # -- tokens -----------------------------------------------------------------------------------

    def token(self) -> str:
        """A live access token for the grant: the one held, unless it is within the refresh margin of expiry."""
        with self._lock:
            held = self._token
            if held is None or held.expires_at - self._clock() <= self._margin_for(self._lifetime):
                held = self._token = self._request_token()
                self._lifetime = held.expires_at - self._clock()
            return held.access_token

    def _margin_for(self, lifetime: float) -> float:
        # A fixed margin at least as long as the token's life would request a new token for every call.
        if self._margin is not None:
            return self._margin
        return min(DEFAULT_REFRESH_MARGIN_SECONDS, lifetime / 5)

    def _request_token(self) -> Token:
        if self._pending is not None:
            return self._collect(self._pending)
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": f"grant:{self.grant}"}).encode()
        status, headers, body = self._send(
            "POST",
            f"{self.url}/oauth2/token",
            {"authorization": self._basic, "content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
            form,
        )
        answer = _json_or_none(body)
        if status == 400 and isinstance(answer, dict) and answer.get("error") == "authorization_pending":
            # Another POST /oauth2/token would hold a new request for a human: poll this one instead.
            self._pending = str(answer.get("approval_id"))
            raise NeedsApproval(self._pending, None)
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            raise error_from(status, answer)
        return self._token_of(answer)

    def _collect(self, approval_id: str) -> Token:
        """Polls the held request (GET /v1/approvals/:id): its token once a human approved it."""
        status, headers, body = self._send(
            "GET",
            f"{self.url}/v1/approvals/{urllib.parse.quote(approval_id, safe='')}",
            {"authorization": self._basic, "accept": "application/json"},
            None,
        )
        answer = _json_or_none(body)
        if status != 200 or not isinstance(answer, dict):
            if status == 404:
                self._pending = None
            raise error_from(status, answer, headers.get(BROKER_ERROR_HEADER))
        token = answer.get("token")
        if isinstance(token, dict) and isinstance(token.get("access_token"), str):
            self._pending = None
            return self._token_of(token)
        decision = answer.get("status")
        if decision == "denied":
            self._pending = None
            note = answer.get("note")
            raise Denied(403, "approval_denied", "a human denied the token request", note if isinstance(note, str) else None)
        if decision in ("pending", "approved"):
            expires_at = answer.get("expiresAt")
            raise NeedsApproval(approval_id, expires_at if isinstance(expires_at, str) else None)
        # Expired, or collected already: the next token() asks anew.
        self._pending = None
        raise KeywardError(410, f"approval_{decision}", f"the approval is {decision}")

    def _token_of(self, answer: Mapping[str, Any]) -> Token:
        issued_at = self._clock()
        return Token(answer["access_token"], issued_at + float(answer.get("expires_in", 0)), str(answer.get("scope", "")))

    def forget_token(self) -> None:
        """Drops the held token: the next call requests a new one."""
        with self._lock:
            self._token = None

    # -- calls ------------------------------------------------------------------------------------

    def call(
        self,
        upstream: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Union[bytes, str, None] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Response:
        """Calls ``path`` (with any query string) on ``upstream`` through the proxy.

        Keyward's refusals raise (Denied, Revoked, Unauthenticated, Unavailable...), each with the
        broker's code; the upstream's own answers, errors included, are returned as they are. A token
        that expired in flight is renewed once: a refused call was never forwarded, so it is safe to repeat.
        """
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        if _leaves_proxy(upstream, path):
            # Sent as is, a front proxy that resolves dot segments (as URL parsers do) would deliver the call,
            # with the agent's token, to another of the broker's routes: the path comes from a model, maybe.
            raise ValueError(f"path {path!r} climbs out of /proxy/{upstream}/ with dot segments")
        outgoing: Dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        if "authorization" in outgoing:
            raise ValueError("the client sets authorization itself: Keyward injects the upstream's credential")
        data: Optional[bytes]
        if json_body is not None:
            data = json.dumps(json_body).encode()
            outgoing.setdefault("content-type", "application/json")
        else:
            data = body.encode() if isinstance(body, str) else body
        url = f"{self.url}/proxy/{urllib.parse.quote(upstream, safe='')}{path}"
        for attempt in (1, 2):
            status, response_headers, response_body = self._send(method.upper(), url, {**outgoing, "authorization": f"Bearer {self.token()}"}, data)
            code = response_headers.get(BROKER_ERROR_HEADER)
            if code is None:
                return Response(status, response_headers, response_body)
            error = error_from(status, _json_or_none(response_body), code)
            if attempt == 1 and isinstance(error, Unauthenticated) and error.code == "token_expired":
                self.forget_token()
                continue
            raise error
        raise AssertionError("unreachable")

    # -- transport --------------------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: Mapping[str, str], data: Optional[bytes]):
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return response.status, _lower(response.headers), response.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, _lower(err.headers), err.read()
        except (urllib.error.URLError, OSError) as err:
            raise KeywardError(0, "unreachable", f"cannot reach the broker at {self.url}", str(getattr(err, "reason", err))) from err


def _leaves_proxy(upstream: str, path: str) -> bool:
    """Whether ``/proxy/<upstream><path>`` resolves outside ``/proxy/<upstream>/`` once its dot segments are
    resolved the way WHATWG URL parsers do (``%2e`` is a dot, ``\\`` a slash), as the TypeScript SDK checks."""
    if upstream in (".", ".."):
        return True
    depth = 0
    for segment in re.split(r"[/\\]", re.split(r"[?#]", path, maxsplit=1)[0])[1:]:
        dots = segment.lower().replace("%2e", ".")
        if dots == "..":
            depth -= 1
            if depth < 0:
                return True
        elif dots != ".":
            depth += 1
    return False


def _lower(headers: Any) -> Dict[str, str]:
    return {name.lower(): value for name, value in headers.items()} if headers is not None else {}


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
