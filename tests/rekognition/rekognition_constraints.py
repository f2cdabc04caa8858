"""The constraints of an AWS JSON-protocol request that botocore's own validator leaves to the service:
`pattern`, the `max` of lengths and numbers, and `enum`, read from botocore's service model (botocore checks
types, required members and `min` only).

The service refuses such a request with a ValidationException in AWS's constraint-violation form, e.g.
`1 validation error detected: Value 'a b' at 'projectName' failed to satisfy constraint: Member must satisfy
regular expression pattern: [a-zA-Z0-9_.\\-]+` (https://docs.aws.amazon.com/rekognition/latest/APIReference/
CommonErrors.html: ValidationException, "The input fails to satisfy the constraints specified by an AWS
service", HTTP 400). Each operation's page lists the same limits as the model, e.g. CreateProject's
ProjectName: length 1–255, pattern [a-zA-Z0-9_.\\-]+ (https://docs.aws.amazon.com/rekognition/latest/
APIReference/API_CreateProject.html). A pattern must match the whole value (Java's String.matches)."""
from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> re.Pattern:
    if r"\p{" in pattern:
        # Java regexes: Python's `re` lacks the Unicode classes of the tag patterns. They occur only in classes
        # that hold \p{N} and '_' too ([\p{L}\p{Z}\p{N}_.:/=+\-@]), so letters may widen to \w there
        pattern = pattern.replace(r"\p{L}", r"\w").replace(r"\p{N}", r"\d").replace(r"\p{Z}", r"\s")
    return re.compile(pattern)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _show(value) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 64 else text[:61] + "..."


def violations(params, shape, where: str = "") -> list[str]:
    """Every constraint the value breaks, as AWS words it: "Value 'x' at 'a.b' failed to satisfy constraint: …"."""
    out: list[str] = []
    meta = shape.metadata

    def bad(value, rule: str) -> None:
        out.append(f"Value '{_show(value)}' at '{where}' failed to satisfy constraint: Member must {rule}")

    kind = shape.type_name
    if kind == "structure" and isinstance(params, dict):
        for name, value in params.items():
            if name in shape.members:
                out += violations(value, shape.members[name], f"{where}.{_camel(name)}" if where else _camel(name))
    elif kind == "list" and isinstance(params, list):
        _length(len(params), meta, lambda rule: bad(params, rule), "length")
        for i, item in enumerate(params):
            out += violations(item, shape.member, f"{where}.{i + 1}.member")
    elif kind == "map" and isinstance(params, dict):
        _length(len(params), meta, lambda rule: bad(params, rule), "length")
        for key, value in params.items():
            out += violations(key, shape.key, f"{where}.{key}.key")
            out += violations(value, shape.value, f"{where}.{key}.value")
    elif kind == "string" and isinstance(params, str):
        _length(len(params), meta, lambda rule: bad(params, rule), "length")
        if "enum" in meta and params not in meta["enum"]:
            bad(params, f"satisfy enum value set: [{', '.join(meta['enum'])}]")
        if "pattern" in meta and not _compiled(meta["pattern"]).fullmatch(params):
            bad(params, f"satisfy regular expression pattern: {meta['pattern']}")
    elif kind == "blob" and isinstance(params, str):
        try:
            size = len(base64.b64decode(params, validate=True))
        except (binascii.Error, ValueError):
            bad("<blob>", "be base64-encoded binary data")
        else:
            _length(size, meta, lambda rule: bad("<blob>", rule), "length")
    elif kind in ("integer", "long", "float", "double") and isinstance(params, (int, float)) \
            and not isinstance(params, bool):
        if "min" in meta and params < meta["min"]:
            bad(params, f"have value greater than or equal to {meta['min']}")
        if "max" in meta and params > meta["max"]:
            bad(params, f"have value less than or equal to {meta['max']}")
    return out


def _length(n: int, meta: dict, bad, what: str) -> None:
    if "min" in meta and n < meta["min"]:
        bad(f"have {what} greater than or equal to {meta['min']}")
    if "max" in meta and n > meta["max"]:
        bad(f"have {what} less than or equal to {meta['max']}")


def report(problems: list[str]) -> str:
    """The ValidationException message: the count, then every violation, '; '-separated."""
    n = len(problems)
    return f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(problems)
