"""A grant held for a human's approval, on a stubbed transport: asking again polls the held request."""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyward import Denied, Keyward, NeedsApproval  # noqa: E402


def _client(answers: list) -> tuple:
    kw = Keyward("http://keyward.test", "agent", "secret", "g")
    sent = []

    def send(method, url, headers, data):
        sent.append((method, url.replace("http://keyward.test", "")))
        if url.endswith("/oauth2/token"):
            body = {"error": "authorization_pending", "error_description": "a human must approve", "approval_id": f"a{len(sent)}"}
            return 400, {"keyward-error": "approval_required"}, json.dumps(body).encode()
        if "/v1/approvals/" in url:
            return 200, {}, json.dumps(answers.pop(0)).encode()
        return 200, {}, b"{}"

    kw._send = send  # type: ignore[method-assign]
    return kw, sent


class ApprovalTest(unittest.TestCase):
    def test_asking_again_polls_the_held_request_and_collects_its_token(self) -> None:
        kw, sent = _client([
            {"status": "pending", "approvalId": "a1", "expiresAt": "2030-01-01T00:00:00.000Z"},
            {"status": "issued", "approvalId": "a1", "expiresAt": "2030-01-01T00:00:00.000Z", "token": {"access_token": "approved-token", "expires_in": 900, "scope": "up:GET"}},
        ])
        for _ in range(2):
            with self.assertRaises(NeedsApproval) as caught:
                kw.token()
            self.assertEqual(caught.exception.approval_id, "a1")
        self.assertEqual(kw.token(), "approved-token")
        self.assertEqual(sent, [("POST", "/oauth2/token"), ("GET", "/v1/approvals/a1"), ("GET", "/v1/approvals/a1")])

    def test_a_denied_request_raises_denied_and_the_next_call_asks_anew(self) -> None:
        kw, sent = _client([{"status": "denied", "approvalId": "a1", "expiresAt": "2030-01-01T00:00:00.000Z", "note": "not today"}])
        with self.assertRaises(NeedsApproval):
            kw.token()
        with self.assertRaises(Denied) as caught:
            kw.token()
        self.assertEqual((caught.exception.code, caught.exception.reason), ("approval_denied", "not today"))
        with self.assertRaises(NeedsApproval):
            kw.token()
        self.assertEqual([s[0] for s in sent], ["POST", "GET", "POST"])


if __name__ == "__main__":
    unittest.main()
