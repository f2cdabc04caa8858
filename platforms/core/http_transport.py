"""The load tool's HTTP transport (platforms/core/transport.py's shapes over aiohttp): what `platbench load URL`
sends with, and what a platform whose endpoint is plain HTTPS behind a token builds on (its headers, its own
readiness). aiohttp is imported when a transport opens, not with this module."""
from __future__ import annotations

import asyncio
import time

from platforms.core.transport import Payload, Reply, Target


class HttpTransport:
    """aiohttp with a pool of `concurrency` keep-alive connections."""

    def __init__(self, target: Target, concurrency: int, timeout_s: float, headers: dict[str, str] | None = None):
        self.target, self.concurrency, self.timeout_s = target, concurrency, timeout_s
        self.headers = {"Accept": "application/json", **(headers or {})}
        self._session = None

    async def _open(self):
        import aiohttp

        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency,
                                             ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                                                  auto_decompress=False)
        return self._session

    async def send(self, payload: Payload) -> Reply:
        session = await self._open()
        headers = {**self.headers, "Content-Type": payload.content_type}
        async with session.post(self.target.url, data=payload.body, headers=headers) as resp:
            body = await resp.read()
            return Reply(resp.status, body, {k.lower(): v for k, v in resp.headers.items()})

    async def ready(self, timeout_s: float) -> bool:
        """Poll the health URL until it answers 200 (bounded by timeout_s)."""
        import aiohttp

        session = await self._open()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with session.get(self.target.health_url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return True
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ReadyHttpTransport(HttpTransport):
    """An endpoint without a health route of its own: deploy waited until it served (or it is the user's)."""

    async def ready(self, timeout_s: float) -> bool:
        return True
