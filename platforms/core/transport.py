"""What a load test sends and gets back, whatever carries it: the shapes every transport speaks (the
HTTP one in platforms/bench/loadtest.py, each platform's SDK one in platforms/<name>/endpoint.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol


@dataclass(frozen=True)
class Payload:
    body: bytes
    content_type: str
    images: int



@dataclass
class Target:
    kind: str                      # http, or the name of a platform with endpoints
    url: Optional[str] = None      # http: the predict URL
    health_url: Optional[str] = None
    name: Optional[str] = None     # platform endpoint name / id

    def describe(self) -> str:
        return self.url if self.kind == "http" else f"{self.kind}:{self.name}"



@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


class Transport(Protocol):
    async def send(self, payload: Payload) -> Reply: ...

    async def ready(self, timeout_s: float) -> bool: ...

    async def close(self) -> None: ...



class TransportError(Exception):
    """An SDK call that got no HTTP answer; `platbench_kind` is what the load tool counts it as."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.platbench_kind = kind
