# -*- coding: utf-8 -*-
# Copyright: (c) 2026, gpu.ops maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scripted HTTP server on loopback for the HTTP-level unit tests (no mocks of our own code).

``api.add("GET", "/v2/pods", (200, {...}), (429, {...}, {"Retry-After": "2"}))`` queues answers for a
route; the last one repeats. A callable answer gets the recorded request and returns the answer.
Every request is recorded with method, path, query, headers and JSON body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeApi:
    def __init__(self):
        self.routes = {}
        self.requests = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                return

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                parts = urlsplit(self.path)
                req = {"method": self.command, "path": parts.path, "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                       "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                with api._lock:
                    api.requests.append(req)
                    queue = api.routes.get((self.command, parts.path))
                    if not queue:
                        answer = (404, {"title": "Not Found", "status": 404, "detail": "no route %s %s" % (
                            self.command, parts.path)})
                    elif len(queue) > 1:
                        answer = queue.pop(0)
                    else:
                        answer = queue[0]
                if callable(answer):
                    answer = answer(req)
                status, payload = answer[0], answer[1]
                headers = answer[2] if len(answer) > 2 else {}
                if payload is None:
                    data = b""
                elif isinstance(payload, (bytes, str)):
                    data = payload.encode() if isinstance(payload, str) else payload
                    headers.setdefault("Content-Type", "text/plain")
                else:
                    data = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def add(self, method, path, *answers):
        self.routes[(method.upper(), path)] = list(answers)

    def calls(self, method=None, path=None):
        return [r for r in self.requests if (method is None or r["method"] == method)
                and (path is None or r["path"] == path)]

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Sleeps:
    """A sleep that records and returns at once (backoff is asserted, not waited for)."""

    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)
