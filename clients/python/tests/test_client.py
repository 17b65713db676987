"""The Python client against a real broker: `src/main.ts` started as `npm start` does, on an embedded
database in a temporary directory, with a real HTTP upstream. Standard library only (unittest); pytest
runs it too. From the repository root: python3 -m unittest discover -s clients/python/tests -v"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from keyward import Denied, Keyward, KeywardError, Revoked, Unauthenticated  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
ADMIN_KEY = "kwa_pytest_" + secrets.token_hex(20)
UPSTREAM_SECRET = "python-client-upstream-secret-" + "p" * 12


class _Upstream(BaseHTTPRequestHandler):
    received: list = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        _Upstream.received.append({"method": self.command, "path": self.path, "authorization": self.headers.get("authorization"), "body": body})
        status = 404 if self.path.startswith("/v1/missing") else 200
        payload = json.dumps({"method": self.command, "path": self.path}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:  # quiet
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """`node build/src/main.js` (what `npm start` runs) in its own process group, on a temporary data directory."""

    def __init__(self) -> None:
        # Reachable by the database's own OS user when run as root (mode 0755), as the broker requires.
        self.data_dir = tempfile.mkdtemp(prefix="keyward-pytest-")
        os.chmod(self.data_dir, 0o755)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "KEYWARD_DATA_DIR": self.data_dir,
            "KEYWARD_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "KEYWARD_ADMIN_KEY": ADMIN_KEY,
            "LOG_LEVEL": "warn",
        }
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [shutil.which("node") or "node", "build/src/main.js"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited: {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"broker did not start: {self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def admin(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"authorization": f"Bearer {ADMIN_KEY}", **({"content-type": "application/json"} if data else {})}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


broker: Broker
upstream: ThreadingHTTPServer
agent: dict


def setUpModule() -> None:
    global broker, upstream, agent
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    broker = Broker()
    try:
        status, _ = broker.admin("POST", "/v1/upstreams", {
            "name": "api",
            "baseUrl": f"http://127.0.0.1:{upstream.server_address[1]}",
            "environment": "staging",
            "auth": {"type": "header", "header": "Authorization", "template": "Bearer {secret}"},
            "secret": UPSTREAM_SECRET,
        })
        assert status == 201, status
        status, agent = broker.admin("POST", "/v1/agents", {"name": "python-agent"})
        assert status == 201, status
        status, grant = broker.admin("POST", "/v1/grants", {
            "name": "deploy",
            "agents": [agent["id"]],
            "upstream": "api",
            "methods": ["GET", "POST"],
            "paths": ["/v1/**"],
            "deny": [{"path": "/v1/admin/**"}],
        })
        assert status == 201, status
        agent["grantId"] = grant["id"]
    except BaseException:
        broker.stop()
        raise


def tearDownModule() -> None:
    broker.stop()
    upstream.shutdown()


def client(**options) -> Keyward:
    return Keyward(broker.url, agent["clientId"], agent["clientSecret"], grant="deploy", **options)


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class TokenTest(unittest.TestCase):
    def test_holds_a_token_and_refreshes_it_before_expiry(self) -> None:
        clock = FakeClock()
        kw = client(clock=clock, refresh_margin_seconds=30)
        first = kw.token()
        self.assertEqual(kw.token(), first)  # held while it has life left
        lifetime = kw._token.expires_at - clock.now
        self.assertGreater(lifetime, 30)
        clock.now += lifetime - 31  # just outside the margin: still held
        self.assertEqual(kw.token(), first)
        clock.now += 2  # inside the margin: renewed before it expires
        second = kw.token()
        self.assertNotEqual(second, first)
        self.assertEqual(client().call("api", "GET", "/v1/items").status, 200)

    def test_a_wrong_secret_is_unauthenticated_invalid_client(self) -> None:
        kw = Keyward(broker.url, agent["clientId"], "wrong-secret", grant="deploy")
        with self.assertRaises(Unauthenticated) as caught:
            kw.token()
        self.assertEqual((caught.exception.status, caught.exception.code), (401, "invalid_client"))

    def test_an_unknown_grant_is_invalid_scope(self) -> None:
        kw = Keyward(broker.url, agent["clientId"], agent["clientSecret"], grant="no-such-grant")
        with self.assertRaises(KeywardError) as caught:
            kw.token()
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "invalid_scope"))

    def test_an_unreachable_broker_says_so(self) -> None:
        kw = Keyward(f"http://127.0.0.1:{_free_port()}", agent["clientId"], agent["clientSecret"], grant="deploy")
        with self.assertRaises(KeywardError) as caught:
            kw.token()
        self.assertEqual((caught.exception.status, caught.exception.code), (0, "unreachable"))


class CallTest(unittest.TestCase):
    def test_an_allowed_call_reaches_the_upstream_with_the_real_key(self) -> None:
        response = client().call("api", "POST", "/v1/deployments?ref=main", json_body={"ref": "main"})
        self.assertEqual(response.status, 200)
        self.assertEqual(response.json(), {"method": "POST", "path": "/v1/deployments?ref=main"})
        seen = _Upstream.received[-1]
        self.assertEqual(seen["authorization"], f"Bearer {UPSTREAM_SECRET}")
        self.assertEqual(json.loads(seen["body"]), {"ref": "main"})

    def test_the_upstreams_own_errors_are_returned_not_raised(self) -> None:
        response = client().call("api", "GET", "/v1/missing")
        self.assertEqual(response.status, 404)
        self.assertEqual(response.json()["path"], "/v1/missing")

    def test_refusals_raise_denied_with_the_brokers_code(self) -> None:
        kw = client()
        before = len(_Upstream.received)
        for method, path, code in [
            ("DELETE", "/v1/items/1", "method_not_granted"),
            ("GET", "/v1/admin/users", "deny_rule"),
            ("GET", "/v2/items", "path_not_granted"),
            ("GET", "/v1/items?_method=DELETE", "method_override"),
        ]:
            with self.subTest(code=code):
                with self.assertRaises(Denied) as caught:
                    kw.call("api", method, path)
                self.assertEqual((caught.exception.status, caught.exception.code), (403, code))
                self.assertTrue(caught.exception.reason)
        self.assertEqual(len(_Upstream.received), before)  # nothing refused was forwarded

    def test_a_revoked_agent_raises_revoked(self) -> None:
        status, other = broker.admin("POST", "/v1/agents", {"name": "python-revoked"})
        self.assertEqual(status, 201)
        self.assertEqual(broker.admin("PATCH", f"/v1/grants/{agent['grantId']}", {"agents": [agent["id"], other["id"]]})[0], 200)
        kw = Keyward(broker.url, other["clientId"], other["clientSecret"], grant="deploy")
        self.assertEqual(kw.call("api", "GET", "/v1/items").status, 200)
        self.assertLess(broker.admin("POST", "/v1/revocations", {"agentId": other["id"], "reason": "python client test"})[0], 300)
        with self.assertRaises(Revoked) as caught:
            kw.call("api", "GET", "/v1/items")
        self.assertEqual((caught.exception.status, caught.exception.code), (401, "token_revoked"))

    def test_refuses_to_send_an_authorization_header_of_its_own(self) -> None:
        with self.assertRaises(ValueError):
            client().call("api", "GET", "/v1/items", headers={"Authorization": "Bearer x"})


if __name__ == "__main__":
    unittest.main()
