"""Refusals the broker answers in the upstream's protocol (src/proxy/refusals.ts), on a stubbed
transport: their code is in the keyward-error header, not in a Keyward error body."""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyward import Denied, Keyward, Unavailable  # noqa: E402


def _refusing(status: int, code: str, body: bytes) -> Keyward:
    kw = Keyward("http://keyward.test", "agent", "secret", "g")

    def send(method, url, headers, data):
        if url.endswith("/oauth2/token"):
            return 200, {}, json.dumps({"access_token": "t", "expires_in": 900, "scope": "up:POST"}).encode()
        return status, {"keyward-error": code, "content-type": "application/json"}, body

    kw._send = send  # type: ignore[method-assign]
    return kw


class NativeRefusalTest(unittest.TestCase):
    def test_a_graphql_refusal_carries_the_brokers_code_and_reason(self) -> None:
        body = {"errors": [{"message": "operation denied: mutation deleteService", "extensions": {"code": "operation_denied", "reason": "deleteService"}}]}
        with self.assertRaises(Denied) as caught:
            _refusing(403, "operation_denied", json.dumps(body).encode()).call("railway", "POST", "/graphql/v2", json_body={"query": "mutation{x}"})
        self.assertEqual(caught.exception.code, "operation_denied")
        self.assertEqual(caught.exception.reason, "deleteService")

    def test_a_json_rpc_refusal_before_forwarding_is_told_from_an_upstream_failure(self) -> None:
        body = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "audit log unavailable", "data": {"code": "audit_unavailable"}}}
        with self.assertRaises(Unavailable) as caught:
            _refusing(503, "audit_unavailable", json.dumps(body).encode()).call("rpc", "POST", "/", json_body={"jsonrpc": "2.0", "id": 1, "method": "x"})
        self.assertEqual(caught.exception.code, "audit_unavailable")

    def test_an_aws_xml_refusal_carries_the_brokers_code(self) -> None:
        body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>m</Message><KeywardCode>method_not_granted</KeywardCode></Error>"
        with self.assertRaises(Denied) as caught:
            _refusing(403, "method_not_granted", body).call("s3", "DELETE", "/bucket/key")
        self.assertEqual(caught.exception.code, "method_not_granted")


if __name__ == "__main__":
    unittest.main()
