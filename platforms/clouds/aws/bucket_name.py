"""S3's bucket naming rules, as a settings type every platform on AWS takes `--set bucket=` with, so a name
S3 would refuse is refused in one line before anything is created, the same way everywhere.
https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (general purpose buckets)"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_SHAPE = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+")


def bucket_problem(name: str) -> str | None:
    """Which rule `name` breaks, or None."""
    if not 3 <= len(name) <= 63:
        return f"{len(name)} characters (3–63)"
    if not _SHAPE.fullmatch(name):
        return "only lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name:
        return "two periods in a row"
    if _IP.fullmatch(name):
        return "formatted as an IP address"
    return None


def _checked(name: str) -> str:
    why = bucket_problem(name)
    if why:
        raise ValueError(f"bucket {name!r} is not a valid S3 bucket name: {why}")
    return name


BucketName = Annotated[str, AfterValidator(_checked)]
