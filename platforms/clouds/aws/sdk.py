"""boto3 for everything platbench does on AWS: imported only when used (the `aws` extra brings it), and
clients that retry the same way and count their attempts.

Every client uses botocore's `standard` retry mode (throttling, 5xx and connection errors retried with
backoff); attempts are counted from botocore's own events, so a run reports how many retries it needed.
https://docs.aws.amazon.com/boto3/latest/guide/retries.html (retry modes, max_attempts)
https://docs.aws.amazon.com/boto3/latest/guide/events.html (before-call / before-send events)"""
from __future__ import annotations

import os

from platforms.core.sdk import require

MAX_ATTEMPTS = int(os.environ.get("PLATBENCH_S3_MAX_ATTEMPTS", "8"))


def boto3_module(what: str = "the AWS SDK (boto3)"):
    return require("boto3", "aws", what)


def client_config(max_pool: int = 32):
    from botocore.config import Config

    # total_max_attempts counts the first attempt too; botocore's `max_attempts` counts retries only
    return Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}, max_pool_connections=max_pool,
                  connect_timeout=10, read_timeout=120)


def count_attempts(client, stats) -> None:
    """`before-call` fires once per API call, `before-send` once per HTTP attempt (retries included)."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}", lambda **kw: stats.add(requests=1))
    client.meta.events.register(f"before-send.{service}", lambda **kw: stats.add(attempts=1))
