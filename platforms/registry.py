"""Platforms are found through the `platbench.platforms` entry-point group (pyproject.toml).

Listing names never imports a launcher module, so cloud SDKs stay off the CLI's start path; a
launcher module itself imports its SDK lazily and names the extra to install when it is missing.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from platforms.errors import UserError

if TYPE_CHECKING:
    from platforms.base import Platform

GROUP = "platbench.platforms"


@lru_cache(maxsize=1)
def _entry_points() -> dict:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    """Registered platform names, `local` first, then alphabetical."""
    return sorted(_entry_points(), key=lambda n: (n != "local", n))


def get(name: str) -> type[Platform]:
    try:
        ep = _entry_points()[name]
    except KeyError:
        raise UserError(f"unknown platform {name!r}; known platforms: {', '.join(names())}") from None
    return ep.load()
