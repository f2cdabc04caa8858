"""Request bodies and query strings checked against databricks-sdk's own type annotations, the way the service
checks them: an unknown field, a missing required field, a value of the wrong JSON type or an enum value the API
does not define is a 400 INVALID_PARAMETER_VALUE (https://docs.databricks.com/api/workspace/introduction, "Error
responses"). The SDK's classes are generated from the same API specification as the REST reference
(https://docs.databricks.com/api/workspace/jobs/submit, …/files/upload, …/servingendpoints/create), so their
annotations are the field table: `x: T` without a default is required, `Optional[T] = None` is not.

`from_dict` of those dataclasses cannot serve as the check: it copies scalars unchecked ("0" for an int comes
back as "0") and turns an unknown enum value into None, so a round trip misses both. Integers are accepted as
decimal strings too: the APIs are protobuf-defined and proto3's JSON mapping reads int64 from either
(https://protobuf.dev/programming-guides/json/)."""
from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import typing
from functools import lru_cache

_INT = re.compile(r"^-?\d+$")


def body_problems(method, body, where: str = "") -> list[str]:
    """`body` (a JSON object) against the parameters of an SDK method (e.g. JobsAPI.submit)."""
    known, required = _signature(method)
    return _object(known, required, body, where)


def query_problems(method, query: dict[str, str]) -> list[str]:
    """A query string against the parameters of an SDK method: the values are text, so ints are digits and
    booleans are true/false."""
    known, required = _signature(method)
    out = [f"{k}: required" for k in sorted(required)  # a BinaryIO parameter is the body
           if k not in query and k not in _path_params(method) and known[k] is not typing.BinaryIO]
    for k, v in query.items():
        tp = _scalar(known.get(k))
        if k not in known:
            out.append(f"{k}: not a parameter the API knows")
        elif tp is int and not _INT.match(v):
            out.append(f"{k}: {v!r} is not an integer")
        elif tp is bool and v not in ("true", "false"):
            out.append(f"{k}: {v!r} is not a boolean (true or false)")
    return out


def dataclass_problems(cls, value, where: str) -> list[str]:
    """`value` (a JSON object) against one of the SDK's dataclasses (e.g. jobs.SubmitTask)."""
    return _object(*_fields(cls), value, where)


@lru_cache(maxsize=None)
def _signature(method) -> tuple[dict, frozenset]:
    hints = typing.get_type_hints(method)
    params = {n: p for n, p in inspect.signature(method).parameters.items() if n != "self"}
    return ({n: hints.get(n, typing.Any) for n in params},
            frozenset(n for n, p in params.items() if p.default is inspect.Parameter.empty))


def _path_params(method) -> set[str]:
    """Parameters the SDK puts in the URL path (file_path, name, …): the route carries them, not the query."""
    src = inspect.getsource(method)
    return set(re.findall(r"\{(\w+)\}", src)) | set(re.findall(r"_escape_multi_segment_path_parameter\((\w+)\)", src))


@lru_cache(maxsize=None)
def _fields(cls) -> tuple[dict, frozenset]:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return ({f.name: hints[f.name] for f in fields},
            frozenset(f.name for f in fields if f.default is dataclasses.MISSING
                      and f.default_factory is dataclasses.MISSING))


def _object(known: dict, required: frozenset, value, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where or 'body'}: {_show(value)} is not an object"]
    at = (where + ".") if where else ""
    out = [f"{at}{k}: required" for k in sorted(required) if value.get(k) is None]
    for k, v in value.items():
        if k not in known:
            out.append(f"{at}{k}: not a field the API knows")
        elif v is not None:
            out += _value(known[k], v, at + k)
    return out


def _scalar(tp):
    """Optional[T] → T."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _value(tp, v, where: str) -> list[str]:
    tp = _scalar(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        if not isinstance(v, list):
            return [f"{where}: {_show(v)} is not an array"]
        return [p for i, item in enumerate(v) for p in _value(args[0] if args else typing.Any, item, f"{where}[{i}]")]
    if origin is dict:
        if not isinstance(v, dict):
            return [f"{where}: {_show(v)} is not an object"]
        return [p for k, item in v.items() for p in _value(args[1] if args else typing.Any, item, f"{where}.{k}")]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        return [] if v in values else [f"{where}: {_show(v)} is not one of {', '.join(map(str, values))}"]
    if dataclasses.is_dataclass(tp):
        return dataclass_problems(tp, v, where)
    if tp is bool:
        return [] if isinstance(v, bool) else [f"{where}: {_show(v)} is not a boolean"]
    if tp is int:
        ok = (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and _INT.match(v))
        return [] if ok else [f"{where}: {_show(v)} is not an integer"]
    if tp is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return [] if ok else [f"{where}: {_show(v)} is not a number"]
    if tp is str:
        return [] if isinstance(v, str) else [f"{where}: {_show(v)} is not a string"]
    return []  # Any, streams: nothing the annotation says


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
