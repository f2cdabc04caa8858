"""boto3 for everything platbench does on AWS: imported only when used (the `aws` extra brings it), and
clients that retry the same way and count their attempts.

Every client uses botocore's `standard` retry mode (throttling, 5xx and connection errors retried with
backoff); attempts are counted from botocore's own events, so a run reports how many retries it needed.
https://docs.aws.amazon.com/boto3/latest/guide/retries.html (retry modes, max_attempts)
https://docs.aws.amazon.com/boto3/latest/guide/events.html (before-call / before-send events)"""
from __future__ import annotations

import os
from contextlib import contextmanager

from platforms.core.sdk import require
from platforms.core.transport import TransportError

MAX_ATTEMPTS = 8  # per AWS call, the first attempt included; PLATBENCH_S3_MAX_ATTEMPTS sets another


def max_attempts() -> int:
    """Read when a client is made, not at import: a launch in a process that imported this module earlier
    (a sweep worker, the CLI run in-process) still gets the caller's setting."""
    return int(os.environ.get("PLATBENCH_S3_MAX_ATTEMPTS") or MAX_ATTEMPTS)


def boto3_module(what: str = "the AWS SDK (boto3)"):
    return require("boto3", "aws", what)


def client_config(max_pool: int = 32):
    from botocore.config import Config

    # total_max_attempts counts the first attempt too; botocore's `max_attempts` counts retries only
    return Config(retries={"mode": "standard", "total_max_attempts": max_attempts()}, max_pool_connections=max_pool,
                  connect_timeout=10, read_timeout=120)


def count_attempts(client, stats) -> None:
    """`before-call` fires once per API call, `before-send` once per HTTP attempt (retries included)."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}", lambda **kw: stats.add(requests=1))
    client.meta.events.register(f"before-send.{service}", lambda **kw: stats.add(attempts=1))


@contextmanager
def transport_errors():
    """A load test's request through boto3 (invoke_endpoint, detect_custom_labels): botocore's connection
    failures become the load tool's TransportError kinds, so every transport counts them alike."""
    from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    try:
        yield
    except (ReadTimeoutError, ConnectTimeoutError) as exc:
        raise TransportError("timeout", str(exc)) from None
    except EndpointConnectionError as exc:
        raise TransportError("refused", str(exc)) from None
    except ConnectionClosedError as exc:
        raise TransportError("reset", str(exc)) from None


def http_status(exc) -> int:
    """The HTTP status a botocore ClientError came with (500 when it names none)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
