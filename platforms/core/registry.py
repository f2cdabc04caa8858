"""The platform registry: every package `platforms/<name>/` whose `__init__.py` declares `SPEC` is a
platform (no shared file lists them), plus third-party platforms through the `platbench.platforms`
entry-point group, each pointing at a `PlatformSpec`.

Listing platforms imports only their light `__init__` modules (and the cloud layer's, platforms/clouds): no
launcher, no cloud SDK. Launchers, endpoints and object stores are imported when one is used
(PlatformSpec.load); `open_store` finds a store by its URI's scheme."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from platforms.errors import UserError

if TYPE_CHECKING:
    from platforms.core.api import Platform, PlatformSpec

GROUP = "platbench.platforms"
# packages of platforms/ that are shared machinery or features, not platforms
SHARED = frozenset({"core", "clouds", "bench", "report", "scorecard", "image"})


@lru_cache(maxsize=1)
def specs() -> dict[str, "PlatformSpec"]:
    import platforms

    found: dict[str, PlatformSpec] = {}
    for info in pkgutil.iter_modules(platforms.__path__):
        if info.ispkg and info.name not in SHARED:
            spec = getattr(importlib.import_module(f"platforms.{info.name}"), "SPEC", None)
            if spec is not None:
                found[spec.name] = spec
    for ep in entry_points(group=GROUP):
        if ep.name not in found:  # a platform of this repository wins over an installed one of the same name
            found[ep.name] = ep.load()
    return found


def names() -> list[str]:
    """Registered platform names, the in-process one(s) first (PlatformSpec.in_process), then alphabetical."""
    return sorted(specs(), key=lambda n: (not specs()[n].in_process, n))


def this_machine() -> str:
    """The in-process platform's name (PlatformSpec.in_process): what a run on this machine is recorded as
    (a sweep's default, its device pool, an in-process batch, a load test of a server on localhost)."""
    return next(n for n in names() if specs()[n].in_process)


def spec(name: str) -> "PlatformSpec":
    try:
        return specs()[name]
    except KeyError:
        raise UserError(f"unknown platform {name!r}; known platforms: {', '.join(names())}") from None


def get(name: str) -> type["Platform"]:
    """The platform's launcher class (a core.service.Service for an AutoML service); one line for a platform
    listed as not measurable."""
    s = spec(name)
    if s.not_measurable:
        raise UserError(f"{name} is not measurable: {s.not_measurable}")
    return s.load(s.launcher)


def endpoint_class(name: str) -> Any:
    """The platform's endpoint class, or one line saying why it has none."""
    return spec(name).endpoint_class()


def with_endpoints() -> list[str]:
    return [n for n in names() if specs()[n].endpoint is not None]


def schemes() -> dict[str, "PlatformSpec"]:
    """Object-store URI scheme → the platform that owns it."""
    return {scheme: s for s in specs().values() for scheme in s.stores}


def store_class(scheme: str) -> Any:
    owner = schemes().get(scheme)
    if owner is None:
        raise UserError(f"no object store for {scheme}://; known: {', '.join(f'{s}://' for s in schemes())}")
    return owner.load(owner.stores[scheme])


def parse_uri(uri: str) -> tuple[str, str, str]:
    """`s3://bucket/key/prefix` → ("s3", "bucket", "key/prefix"), for every scheme a platform registers."""
    known = schemes()
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in known:
        raise UserError(f"{uri!r} is not an object-store URI ({', '.join(f'{s}://' for s in known)})")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise UserError(f"{uri!r} names no bucket")
    return scheme, bucket, key


def open_store(uri: str, **kwargs) -> Any:
    """`s3://bucket`, `gs://bucket`, … → a store on that bucket (a core.store.ObjectStore; its SDK imported now)."""
    scheme, bucket, _ = parse_uri(uri)
    return store_class(scheme)(bucket, **kwargs)
