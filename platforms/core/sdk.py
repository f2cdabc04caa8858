"""Cloud SDKs are optional extras: import one only when a platform needs it, and say which extra brings it.

Keeps every SDK off the CLI's start path (`platbench --help` imports none)."""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from platforms.errors import UserError


def require(module: str, extra: str, what: str = "") -> ModuleType:
    """Import `module` or fail with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = what or module
        raise UserError(f"{name} is not installed ({exc.name or module} is missing): "
                        f"pip install 'platbench[{extra}]'") from None


def installed(module: str) -> bool:
    """Whether `module` could be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
