"""What a load test sends and gets back, whatever carries it: the shapes every transport speaks (the
HTTP one in platforms/core/http_transport.py, each platform's SDK one in platforms/<name>/endpoint.py or
service.py, most of those a blocking SDK call in threads: ThreadedTransport)."""
from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Protocol

CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}  # request bodies by file suffix


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


class ThreadedTransport(ABC):
    """A blocking SDK call as a transport: `concurrency` calls at a time in threads. The SDK's own retries stay
    off in `call`: the load tool retries, and counts it."""

    def __init__(self, concurrency: int, thread_name: str):
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=thread_name)

    @abstractmethod
    def call(self, payload: Payload) -> Reply:
        """One request: the Reply, or a TransportError where no answer came."""

    async def send(self, payload: Payload) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self.call, payload)

    async def ready(self, timeout_s: float) -> bool:
        return True  # deploy waited until it served (or the endpoint is the user's)

    async def close(self) -> None:
        self.pool.shutdown(wait=False)
