"""The load tool's engine: settings, one sample per request, the runner (closed loop at a concurrency, or open
loop at a fixed rate with latency counted from the scheduled start), retries with exponential backoff and full
jitter on connection failures and 429/502/503/504 — counted apart from the errors, which are final outcomes.
It drives any transport (platforms/core/transport.py); `platbench load`, batch inference, endpoint and
service runs all measure with it."""
from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from platforms.core.timed import frozen_heap
from platforms.core.transport import Payload, Reply, Transport
from platforms.errors import UserError

RETRY_STATUSES = frozenset({429, 502, 503, 504})
CONNECTION_ERRORS = ("reset", "refused", "timeout", "connect", "other")


def classify(exc: BaseException) -> str:
    """A failed attempt's connection-level kind: reset | refused | timeout | connect | other."""
    import errno

    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a core dependency
        aiohttp = None
    if isinstance(exc, asyncio.TimeoutError) or (aiohttp and isinstance(exc, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if aiohttp is not None:
        if isinstance(exc, aiohttp.ClientConnectorError):
            err = getattr(exc, "os_error", None)
            return "refused" if isinstance(err, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED else "connect"
        if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
            return "reset"
        if isinstance(exc, aiohttp.ClientOSError):
            if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                return "reset"
            return "connect"
    kind = getattr(exc, "platbench_kind", None)  # SDK transports tag their exceptions
    return kind if kind in CONNECTION_ERRORS else "other"


@dataclass
class LoadSettings:
    requests: int = 1000
    concurrency: int = 10
    rate: Optional[float] = None          # requests/s, open loop; None: closed loop at `concurrency`
    warmup: int = 20
    timeout_s: float = 60.0               # SageMaker's limit for one invocation
    retries: int = 2
    backoff_s: float = 0.05               # base of the exponential backoff
    backoff_cap_s: float = 2.0
    verify: bool = True                   # a 2xx must carry {"predictions": [...]} with one per image
    wait_ready_s: float = 0.0             # poll the health route first, at most this long
    probe: bool = False                   # one request first; a target that answers nothing is a UserError


@dataclass
class Sample:
    start_s: float        # when the request was due, from the start of the measured run
    latency_ms: float     # from then until its final answer (retries and backoff included)
    status: Optional[int]  # the final HTTP status; None when no answer came
    error: Optional[str]  # None (ok) | "http" | "bad_response" | reset | refused | timeout | connect | other
    attempts: int
    sent: int             # request body bytes
    images: int
    batch: Optional[int]  # the server's X-Platbench-Batch: images in the forward pass that served it


@dataclass
class RunData:
    samples: list[Sample]
    seconds: float
    retry_reasons: dict[str, int]
    first_headers: dict[str, str]
    warmup: dict[str, Any] = field(default_factory=dict)


def _verify(reply: Reply, images: int) -> bool:
    try:
        doc = json.loads(reply.body)
        preds = doc.get("predictions") if isinstance(doc, dict) else None
        return isinstance(preds, list) and len(preds) == images
    except ValueError:
        return False


class Runner:
    def __init__(self, transport: Transport, payloads: list[Payload], s: LoadSettings,
                 progress: Optional[Callable[[Sample], None]] = None):
        self.transport, self.payloads, self.s, self.progress = transport, payloads, s, progress
        self.retry_reasons: dict[str, int] = {}
        self.first_headers: dict[str, str] = {}
        self.replies: Optional[dict[int, bytes]] = None  # request index → body of its 2xx, when kept

    async def one(self, i: int, due: float, t0: float, sem: Optional[asyncio.Semaphore] = None) -> Sample:
        payload = self.payloads[i % len(self.payloads)]
        if sem is not None:
            await sem.acquire()
        try:
            attempts, status, error, batch = 0, None, None, None
            while True:
                attempts += 1
                try:
                    reply = await self.transport.send(payload)
                    status = reply.status
                    if 200 <= status < 300:
                        error = None if (not self.s.verify or _verify(reply, payload.images)) else "bad_response"
                        if error is None and not self.first_headers:
                            self.first_headers = reply.headers
                        if error is None and self.replies is not None:
                            self.replies[i] = reply.body
                        b = reply.headers.get("x-platbench-batch")
                        batch = int(b) if b and b.isdigit() else None
                    else:
                        error = "http"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — every failure is data here
                    status, error = None, classify(exc)
                retryable = error in CONNECTION_ERRORS or (error == "http" and status in RETRY_STATUSES)
                if not retryable or attempts > self.s.retries:
                    break
                reason = str(status) if error == "http" else error
                self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
                # exponential backoff with full jitter
                await asyncio.sleep(random.uniform(0, min(self.s.backoff_cap_s, self.s.backoff_s * 2 ** (attempts - 1))))
        finally:
            if sem is not None:
                sem.release()
        sample = Sample(start_s=due - t0, latency_ms=(time.perf_counter() - due) * 1000, status=status, error=error,
                        attempts=attempts, sent=len(payload.body), images=payload.images, batch=batch)
        if self.progress is not None:
            self.progress(sample)
        return sample

    async def closed_loop(self, n: int, concurrency: int, offset: int = 0) -> tuple[list[Sample], float]:
        counter = itertools.count()
        samples: list[Optional[Sample]] = [None] * n
        t0 = time.perf_counter()

        async def worker() -> None:
            while True:
                i = next(counter)
                if i >= n:
                    return
                samples[i] = await self.one(offset + i, time.perf_counter(), t0)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
        return [s for s in samples if s is not None], time.perf_counter() - t0

    async def open_loop(self, n: int, rate: float, max_in_flight: int, offset: int = 0) -> tuple[list[Sample], float]:
        sem = asyncio.Semaphore(max_in_flight)
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one(offset + i, due, t0, sem)))
        samples = await asyncio.gather(*tasks)
        return list(samples), time.perf_counter() - t0


async def run_load_async(transport: Transport, payloads: list[Payload], s: LoadSettings,
                         progress: Optional[Callable[[Sample], None]] = None) -> RunData:
    if not payloads:
        raise UserError("nothing to send: no payloads")
    # a platform's transport carries its documented request limit (max_payload_bytes): a body over it is
    # refused here, before anything is sent, not counted as failed requests
    limit = getattr(transport, "max_payload_bytes", None)
    biggest = max(len(p.body) for p in payloads)
    if limit and biggest > limit:
        raise UserError(f"a request body of {biggest} bytes exceeds this endpoint's limit of {limit} bytes "
                        f"({getattr(transport, 'payload_limit_source', 'the platform')}): use a smaller --batch")
    if s.wait_ready_s > 0 and not await transport.ready(s.wait_ready_s):
        raise UserError(f"the target did not answer its health check with 200 within {s.wait_ready_s:g} s")
    runner = Runner(transport, payloads, s)
    # one request first: a target that answers nothing (no server, a name that does not resolve) is an
    # error to report, not a run of connection failures to record and compare
    if s.probe:
        probe = await runner.one(0, time.perf_counter(), time.perf_counter())
        if probe.error in CONNECTION_ERRORS:
            raise UserError(f"the target answered nothing ({probe.error}, {probe.attempts} attempts): is it serving?")
    warm: dict[str, Any] = {"requests": 0, "errors": 0}
    if s.warmup > 0:
        warm_samples, warm_s = await runner.closed_loop(s.warmup, s.concurrency)
        warm = {"requests": len(warm_samples), "errors": sum(1 for x in warm_samples if x.error), "seconds": warm_s}
    runner.retry_reasons = {}
    runner.progress = progress
    if s.rate:
        samples, seconds = await runner.open_loop(s.requests, s.rate, s.concurrency, offset=s.warmup)
    else:
        samples, seconds = await runner.closed_loop(s.requests, s.concurrency, offset=s.warmup)
    return RunData(samples, seconds, runner.retry_reasons, runner.first_headers, warm)


def check_settings(s: LoadSettings) -> None:
    if s.requests < 1:
        raise UserError("--requests must be at least 1")
    if s.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    if s.rate is not None and s.rate <= 0:
        raise UserError("--rate must be a positive number of requests per second")
    if s.warmup < 0 or s.retries < 0 or s.timeout_s <= 0:
        raise UserError("--warmup and --retries must be 0 or more, --timeout positive")


def run_with(make_transport: Callable[[], Transport], payloads: list[Payload], s: LoadSettings,
             progress: Optional[Callable[[Sample], None]] = None) -> RunData:
    """A load run in an event loop of its own, on the transport `make_transport` opens there; closed after."""
    check_settings(s)

    async def main() -> RunData:
        transport = make_transport()
        try:
            return await run_load_async(transport, payloads, s, progress)
        finally:
            await transport.close()

    with frozen_heap():
        return asyncio.run(main())


def answer_each(make_transport: Callable[[], Transport], payloads: list[Payload], concurrency: int,
                timeout_s: float, retries: int) -> tuple[RunData, dict[int, bytes]]:
    """Each payload once by `concurrency` clients, no warm-up; the run and the bodies of its 2xx answers by
    payload index (batch inference and a service's test-set evaluation read the predictions)."""
    s = LoadSettings(requests=len(payloads), concurrency=concurrency, warmup=0, timeout_s=timeout_s, retries=retries)

    async def main() -> tuple[RunData, dict[int, bytes]]:
        runner = Runner(make_transport(), payloads, s)
        runner.replies = {}
        try:
            samples, seconds = await runner.closed_loop(len(payloads), concurrency)
        finally:
            await runner.transport.close()
        return RunData(samples, seconds, runner.retry_reasons, runner.first_headers), runner.replies

    with frozen_heap():
        return asyncio.run(main())
