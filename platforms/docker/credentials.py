"""What a docker launch needs on this machine, looked up for `platbench platforms` without the SDK: an engine
whose socket answers the Engine API's ping (GET /_ping → 200 "OK":
https://docs.docker.com/reference/api/engine/version/v1.47/#tag/System/operation/SystemPing) and an image
recorded by `platbench image build` (.platbench/image.json). Docker has no credentials; these stand in for
them in the readiness table (the SPEC's `credentials` by convention)."""
from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from trainer import image_record

DEFAULT_HOST = "unix:///var/run/docker.sock"  # the SDK's default where DOCKER_HOST is unset


def find() -> tuple[bool, str]:
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    why = _ping(host)
    if why:
        return False, f"no Docker engine answers at {host} ({why}): start it, or set DOCKER_HOST"
    try:
        record = image_record.read()
    except ValueError as exc:
        return False, f"engine at {host}; {exc}: build it again (platbench image build)"
    if record is None:
        return False, f"engine at {host}; no image recorded in {image_record.RECORD}: platbench image build"
    return True, f"engine at {host}, image {record.image} recorded"


def _ping(host: str) -> str:
    """'' when the engine answers 200 to GET /_ping, else why not (one second at most)."""
    url = urlsplit(host)
    if url.scheme == "unix":
        family, address = socket.AF_UNIX, url.path
    elif url.scheme in ("tcp", "http"):
        family, address = socket.AF_INET, (url.hostname or "127.0.0.1", url.port or 2375)
    else:
        return f"a {url.scheme}:// engine is not checked offline"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect(address)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status = s.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return "" if " 200 " in f"{status} " else f"answered {status!r}"
