"""Token refresh on a stubbed transport (no broker): when a token is requested again."""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyward import Keyward  # noqa: E402


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _client(expires_in: int, clock: _Clock, **options) -> tuple:
    kw = Keyward("http://keyward.test", "agent", "secret", "g", clock=clock, **options)
    minted = []

    def send(method, url, headers, data):
        if url.endswith("/oauth2/token"):
            minted.append(clock())
            body = {"access_token": f"t{len(minted)}", "expires_in": expires_in, "scope": "up:GET"}
            return 200, {"content-type": "application/json"}, json.dumps(body).encode()
        return 200, {}, b"{}"

    kw._send = send  # type: ignore[method-assign]
    return kw, minted


class RefreshTest(unittest.TestCase):
    def test_a_token_shorter_lived_than_the_margin_is_reused_not_requested_for_every_call(self) -> None:
        clock = _Clock()
        kw, minted = _client(20, clock)
        for _ in range(10):
            kw.call("up", "GET", "/v1/x")
            clock.now += 1
        self.assertEqual(len(minted), 1)  # 20 s token, refreshed within its last fifth (4 s)
        clock.now += 6  # 16 s into its life
        kw.call("up", "GET", "/v1/x")
        self.assertEqual(len(minted), 2)

    def test_a_long_lived_token_is_refreshed_30_seconds_before_expiry(self) -> None:
        clock = _Clock()
        kw, minted = _client(900, clock)
        kw.token()
        clock.now += 869
        kw.token()
        self.assertEqual(len(minted), 1)
        clock.now += 2
        kw.token()
        self.assertEqual(len(minted), 2)

    def test_an_explicit_margin_is_kept(self) -> None:
        clock = _Clock()
        kw, minted = _client(900, clock, refresh_margin_seconds=100)
        kw.token()
        clock.now += 801
        kw.token()
        self.assertEqual(len(minted), 2)


if __name__ == "__main__":
    unittest.main()
