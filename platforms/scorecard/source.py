"""Reading YAML while keeping where every value came from, and reporting problems as file:line.

PyYAML's composer gives a node tree whose nodes carry start marks; we build plain Python data from
that tree ourselves (scalars through SafeLoader's own constructors) and remember, for each path into
the data (e.g. ("steps", 2, "minutes")), the line it was written on. Every problem — bad syntax, a
duplicate key, an unknown tag, a field that fails validation — becomes a `Problem` naming the file,
the line and the field.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from platforms.errors import UserError

Loc = tuple  # a path into the data: ("steps", 2, "minutes")

# Tags we accept; anything else (!!binary, !!set, !!python/..., local !tags) is a problem.
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:timestamp",
}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


_MAX_VALUES = 200_000  # a record is a few hundred values; alias bombs stop here


class _TooBig(Exception):
    def __init__(self, line: int):
        self.line = line


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


def field_name(loc: Iterable[Any]) -> str:
    """("steps", 2, "minutes") → "steps[2].minutes"; () → "(document)"; odd keys → ["a key"]."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.match(str(part)):
            out += "[" + json.dumps(str(part), ensure_ascii=True) + "]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.message}"


class Invalid(UserError):
    """One or more problems in one input file. Its message is the first problem (and how many more),
    so the CLI's one-line error names file, line and field; `.problems` has them all."""

    def __init__(self, problems: list[Problem]):
        assert problems
        self.problems = list(problems)
        first = str(self.problems[0])
        more = len(self.problems) - 1
        if more:
            first += f" (and {more} more problem{'s' if more > 1 else ''}; `platbench scenario validate` lists them all)"
        super().__init__(first)

    def to_user_error(self) -> UserError:
        return self


@dataclass
class Positions:
    """Line numbers (1-based) of the values in one document, by path."""

    path: str
    lines: dict[Loc, int] = field(default_factory=dict)
    key_lines: dict[Loc, int] = field(default_factory=dict)

    def line(self, loc: Iterable[Any]) -> int:
        """The line of `loc`, or of its nearest ancestor that exists (a missing field → its mapping)."""
        loc = tuple(loc)
        while loc:
            if loc in self.key_lines:
                return self.key_lines[loc]
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Iterable[Any], message: str) -> Problem:
        loc = tuple(loc)
        return Problem(self.path, self.line(loc), field_name(loc), message)


_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


def line_count(text: str) -> int:
    """Lines as YAML (and so every line number here) counts them."""
    return len(_BREAK.findall(text)) + 1


def _line_of_offset(text: str, offset: int) -> int:
    return line_count(text[: max(0, offset)])


def read_text(path: Path, display: str) -> str:
    """The file's text; unreadable or non-UTF-8 files are a Problem, not a traceback."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise Invalid([Problem(display, 1, "(file)", "no such file")]) from None
    except IsADirectoryError:
        raise Invalid([Problem(display, 1, "(file)", "is a directory, not a YAML file")]) from None
    except OSError as exc:
        raise Invalid([Problem(display, 1, "(file)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise Invalid([Problem(display, line, "(file)", "not UTF-8 text")]) from None


def parse_yaml(text: str, display: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain data plus the line of every value.

    Raises Invalid listing every problem found (syntax errors stop at the first one, as YAML must).
    """
    pos = Positions(display)
    try:
        loader = yaml.SafeLoader(text)  # the reader rejects unprintable characters right here
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = exc.problem or exc.context or "invalid YAML"
        raise Invalid([Problem(display, line, "(syntax)", f"malformed YAML: {what}")]) from None
    except yaml.reader.ReaderError as exc:
        raise Invalid([Problem(display, _line_of_offset(text, exc.position), "(syntax)",
                               f"malformed YAML: character U+{exc.character:04X} is not allowed ({exc.reason})"
                               if isinstance(exc.character, int) else f"malformed YAML: {exc.reason}")]) from None
    except yaml.YAMLError as exc:
        raise Invalid([Problem(display, 1, "(syntax)", f"malformed YAML: {exc}")]) from None
    except RecursionError:
        raise Invalid([Problem(display, 1, "(syntax)", "document is nested too deeply")]) from None
    if root is None:
        raise Invalid([Problem(display, 1, "(document)", "the file is empty")])

    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")  # only its scalar constructors are used
    active: set[int] = set()

    budget = [_MAX_VALUES]

    def build(node: yaml.Node, loc: Loc) -> Any:
        line = node.start_mark.line + 1
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooBig(line)
        pos.lines.setdefault(loc, line)
        if id(node) in active:
            problems.append(Problem(display, line, field_name(loc), "recursive alias (&anchor inside itself)"))
            return None
        if isinstance(node, yaml.ScalarNode):
            if node.tag not in _SCALAR_TAGS:
                problems.append(Problem(display, line, field_name(loc), f"unsupported YAML tag {node.tag}"))
                return None
            try:
                return constructor.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
                if node.tag == "tag:yaml.org,2002:timestamp":  # 2026-13-45: the field's own check says so, beside
                    return node.value                           # the file's other problems (it would hide them here)
                problems.append(Problem(display, line, field_name(loc), f"bad {node.tag.rsplit(':', 1)[-1]} value {node.value!r}: {exc}"))
                return None
        active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    problems.append(Problem(display, line, field_name(loc), f"unsupported YAML tag {node.tag}"))
                    return None
                return [build(item, loc + (i,)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                if node.tag != _MAP_TAG:
                    problems.append(Problem(display, line, field_name(loc), f"unsupported YAML tag {node.tag}"))
                    return None
                return build_mapping(node, loc)
            problems.append(Problem(display, line, field_name(loc), "unsupported YAML node"))
            return None
        finally:
            active.discard(id(node))

    def build_mapping(node: yaml.MappingNode, loc: Loc) -> dict:
        pairs = list(node.value)
        merged: list = []
        if any(k.tag == _MERGE_TAG for k, _ in pairs):
            try:
                explicit = [(k, v) for k, v in pairs if k.tag != _MERGE_TAG]
                constructor.flatten_mapping(node)  # `<<: *anchor` merge keys, as SafeLoader does
                merged = node.value[: len(node.value) - len(explicit)]
                pairs = explicit
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None) or node.start_mark
                problems.append(Problem(display, mark.line + 1, field_name(loc),
                                        f"bad merge key: {getattr(exc, 'problem', None) or exc}"))
                return {}
        out: dict = {}
        first_line: dict = {}
        for key_node, value_node in pairs:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                problems.append(Problem(display, key_line, field_name(loc), "a key must be plain text"))
                continue
            try:
                key = constructor.construct_object(key_node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError, TypeError):
                key = key_node.value
            if not isinstance(key, str):
                # `1: x`, `true: x`, `null: x`: YAML reads those keys as numbers/booleans/null.
                problems.append(Problem(display, key_line, field_name(loc + (str(key_node.value),)),
                                        f"a key must be text, not {type(key).__name__} (quote it)"))
                continue
            if key in out:
                problems.append(Problem(display, key_line, field_name(loc + (key,)),
                                        f"duplicate key (first written at line {first_line[key]})"))
                continue
            first_line[key] = key_line
            pos.key_lines[loc + (key,)] = key_line
            out[key] = build(value_node, loc + (key,))
        # Merged keys fill in what the mapping does not say itself; among merged mappings the
        # first listed wins (YAML merge-key semantics, as PyYAML implements them).
        for key_node, value_node in reversed(merged):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                problems.append(Problem(display, key_node.start_mark.line + 1, field_name(loc), "a key must be plain text"))
                continue
            try:
                key = constructor.construct_object(key_node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError, TypeError):
                key = key_node.value
            if not isinstance(key, str):
                problems.append(Problem(display, key_node.start_mark.line + 1, field_name(loc + (str(key_node.value),)),
                                        f"a key must be text, not {type(key).__name__} (quote it)"))
                continue
            if key in out:
                continue
            pos.key_lines[loc + (key,)] = key_node.start_mark.line + 1
            out[key] = build(value_node, loc + (key,))
        return out

    try:
        data = build(root, ())
    except RecursionError:
        raise Invalid([Problem(display, 1, "(syntax)", "document is nested too deeply")]) from None
    except _TooBig as exc:
        raise Invalid([Problem(display, exc.line, "(document)",
                               f"more than {_MAX_VALUES} values (aliases expanding without end?)")]) from None
    if problems:
        raise Invalid(problems)
    return data, pos


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, Positions]:
    display = display or str(path)
    return parse_yaml(read_text(path, display), display)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
