"""Faults a test injects into a loopback job server (tests/vertex, sagemaker, azureml, databricks, apolo), each
answered as the real service answers it, so a client's retry policy meets what it meets in the cloud.

A server holds one `Faults`; a test tells it which requests fail, how and how many times (`add`, behind each
server's own `fail(...)`); the handler asks `take(request…)` before it answers and, when a fault is due, answers
with it: a status with the service's error body and headers (a `Shape` of the service's table below), or "reset":
the connection closed without an answer (`reset`).

The shapes, from each service's documentation:
- Google APIs (Vertex AI): {"error": {"code", "message", "status"}}, 503 UNAVAILABLE, 429 RESOURCE_EXHAUSTED,
  400 INVALID_ARGUMENT; no Retry-After (https://cloud.google.com/apis/design/errors, "Error model" and its
  table of codes).
- Azure Resource Manager (Azure ML's control plane): {"error": {"code", "message"}} (ARM's common error response,
  https://learn.microsoft.com/javascript/api/@azure/arm-machinelearning/errorresponse); 429 TooManyRequests with
  Retry-After in seconds (https://learn.microsoft.com/azure/azure-resource-manager/management/
  request-limits-and-throttling, "Error code"); 503 ServiceUnavailable, also with Retry-After
  (https://learn.microsoft.com/javascript/api/@azure/arm-consumption/errorresponse).
- Databricks: {"error_code", "message"} (https://docs.databricks.com/api/workspace/introduction, "Errors"; the
  same object on every service); 429 REQUEST_LIMIT_EXCEEDED with Retry-After (https://learn.microsoft.com/azure/
  databricks/resources/limits: throttled requests get 429), 503 TEMPORARILY_UNAVAILABLE (databricks-sdk's
  errors/platform.py maps 429 and 503 to TooManyRequests / TemporarilyUnavailable and reads Retry-After).
- Apolo publishes no error reference: its API answers errors as {"error": message} (what apolo-sdk's
  _core._raise_error reads), 503 for a service not available and 502 for a bad gateway (the statuses its
  exception map names); throttling is a 429 the SDK has no class for.
SageMaker's faults are its own operations' error codes (AWS JSON 1.1: tests/sagemaker/sagemaker_server.py),
through the same `Faults`."""
from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

RESET = "reset"


@dataclass(frozen=True)
class Shape:
    """How a service answers one fault: status, JSON error body, headers."""

    status: int
    body: dict
    headers: dict = field(default_factory=dict)

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


def _google(status: int, code: str) -> Shape:
    return Shape(status, {"error": {"code": status, "status": code, "message": "injected by the test"}})


GOOGLE = {"503": _google(503, "UNAVAILABLE"), "429": _google(429, "RESOURCE_EXHAUSTED"),
          "400": _google(400, "INVALID_ARGUMENT")}
AZURE_ARM = {
    "503": Shape(503, {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unavailable "
                                 "(injected by the test)."}}, {"Retry-After": "1"}),
    "429": Shape(429, {"error": {"code": "TooManyRequests", "message": "Number of requests exceeded the limit "
                                 "(injected by the test)."}}, {"Retry-After": "1"}),
}
DATABRICKS = {
    "503": Shape(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service at /api is temporarily "
                       "unavailable (injected by the test)."}, {"Retry-After": "1"}),
    "429": Shape(429, {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "Too many requests (injected by the "
                       "test)."}, {"Retry-After": "1"}),
}
APOLO = {"503": Shape(503, {"error": "Service Unavailable (injected by the test)"}),
         "502": Shape(502, {"error": "Bad Gateway (injected by the test)"}),
         "429": Shape(429, {"error": "Too Many Requests (injected by the test)"})}


class Faults:
    """The faults waiting on one server: [match(request…) -> bool, action, times left], first match first."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: list[list] = []

    def add(self, match: Callable[..., bool], action: Any, times: int) -> None:
        with self.lock:
            self.pending.append([match, action, times])

    def take(self, *request) -> Optional[Any]:
        """The action of the first fault due on this request (one of its times used up), or None."""
        with self.lock:
            for fault in self.pending:
                if fault[2] > 0 and fault[0](*request):
                    fault[2] -= 1
                    return fault[1]
        return None

    def left(self) -> int:
        """Injected faults no request has met yet."""
        with self.lock:
            return sum(f[2] for f in self.pending)

    def clear(self) -> None:
        with self.lock:
            self.pending.clear()


def route(method: str, pattern: str) -> Callable[[str, str], bool]:
    """A match on (method, path): the method, and `pattern` searched in the path."""
    import re

    rx = re.compile(pattern)
    return lambda m, path: m == method and rx.search(path) is not None


def reset(handler) -> None:
    """Close a http.server handler's connection without an answer (the client sees a reset / a dropped line)."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def answer(handler, action: str, shapes: dict) -> None:
    """Answer a http.server handler's request with the fault `action` as the service shapes it."""
    if action == RESET:
        return reset(handler)
    shape = shapes[action]
    body = shape.encoded()
    handler.send_response(shape.status)
    handler.send_header("Content-Type", "application/json")
    for k, v in shape.headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
