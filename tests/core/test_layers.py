"""The platform layer's shape (docs/design.md, "Layers"): no import cycles in platforms/ or trainer/, shared
modules import no platform package, the trainer imports nothing from platforms/, and no module outside a
platform's package names that platform in code (help texts come from the registry; a platform name that is
also a tool's, like docker, is exempt in its tool uses only: TOOL_WORDS)."""
from __future__ import annotations

import ast
from pathlib import Path

from platforms.core import registry

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = registry.names()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for top in ("platforms", "trainer") for p in sorted((ROOT / top).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports, at the top or inside a function."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(block.test) for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # imports for type annotations only: not run, no cycle

        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            # a module importing its own package's __init__ (for SPEC) is not a cycle through that package
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def owner(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "platforms" and parts[1] in PLATFORMS else None


def test_shared_modules_import_no_platform():
    bad = [f"{m} imports {d}" for m, deps in graph().items() if m.startswith("platforms") and owner(m) is None
           for d in deps if owner(d) is not None]
    assert bad == []


def test_a_platform_imports_no_other_platform():
    bad = [f"{m} imports {d}" for m, deps in graph().items() if owner(m)
           for d in deps if owner(d) not in (None, owner(m))]
    assert bad == []


def test_trainer_imports_nothing_from_platforms():
    bad = [f"{m} imports {d}" for m, deps in graph().items() if m.startswith("trainer")
           for d in deps if d.startswith("platforms")]
    assert bad == []


def _code_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants and names in code, docstrings left out."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            out.append((n.lineno, n.value))
        elif isinstance(n, ast.Name):
            out.append((n.lineno, n.id))
        elif isinstance(n, ast.Attribute):
            out.append((n.lineno, n.attr))
    return out


# Platform names that are also the name of a tool shared code legitimately drives for every platform: word →
# why. Such a word is not taken as naming its platform, except in the forms below that can only mean the
# platform package (TOOL_WORD_STILL_NAMES). Keep this table small: every other platform name stays forbidden.
TOOL_WORDS = {
    "docker": "also the Docker SDK, engine, CLI and Dockerfile that platforms/image drives for every platform (and "
              "SageMaker's local_runner=docker)",
}
TOOL_WORD_STILL_NAMES = ("platforms.{}", "platforms/{}", "launch {}")


def names_platform(text: str, platform: str, tool_words: dict[str, str] = TOOL_WORDS) -> bool:
    """Whether a string or name in code names `platform` (`local` is an everyday word: never)."""
    low = text.lower()
    if platform == "local" or platform not in low:
        return False
    if platform in tool_words:
        return any(form.format(platform) in low for form in TOOL_WORD_STILL_NAMES)
    return True


def test_the_naming_rule_exempts_only_tool_words():
    assert names_platform("if spec.name == 'sagemaker'", "sagemaker")
    assert names_platform("no Docker engine answers", "docker", tool_words={})  # the table is what exempts it
    assert not names_platform("no Docker engine answers", "docker")
    assert not names_platform("docker", "docker")  # the SDK's module name, SageMaker's local runner
    assert names_platform("from platforms.docker import SPEC", "docker")
    assert names_platform("platforms/docker/train.py", "docker")
    assert names_platform("run `platbench launch docker --data DIR`", "docker")
    assert not names_platform("runs locally", "local")


def test_every_tool_word_is_a_platform_with_a_reason():
    assert TOOL_WORDS.keys() <= set(PLATFORMS) and all(len(why) > 20 for why in TOOL_WORDS.values())


def test_no_shared_module_names_a_platform_in_code():
    bad = []
    for name, path in modules().items():
        if not name.startswith("platforms") or owner(name) is not None:
            continue
        for line, text in _code_strings(ast.parse(path.read_text())):
            for platform in PLATFORMS:
                if names_platform(text, platform):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {text[:80]!r} names {platform}")
    assert bad == []
