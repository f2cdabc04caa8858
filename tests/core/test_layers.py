"""The layers of platforms/ and trainer/ (docs/design.md, "Layers"), enforced on the import graph.

Every import counts: at the top, inside a function, and under `if TYPE_CHECKING:` (a type named from another
module is a dependency on it, and the issue that asked for this test measured it so). The one way up is the
registry's: core/registry.py and PlatformSpec.load import a platform's modules by the name its SPEC gives, at
run time; no other module imports anything of ours by a computed name (test_only_the_registry_imports_by_name).

Checked at module level (no cycle of modules) and at package level (each package imports only the packages
its layer may: ALLOWED; no cycle of packages), and in text: no module outside a platform's package names that
platform in code, `local` included (what shared code needs to know about a platform comes from its SPEC or its
Outcome; help texts come from the registry; a platform name that is also a tool's, like docker, is exempt in
its tool uses only: TOOL_WORDS), and no platform names another (its extra, its store, its name).

What the earlier version of this test missed, and why: it skipped TYPE_CHECKING imports, so the module cycle
core.api -> settings -> staging -> store -> registry -> api (closed by registry's typing import of api) did not
show; it had no package level, so core -> bench -> report -> core, scorecard -> core -> bench -> report ->
scorecard were invisible (each is a cycle of packages whose modules form no cycle); and its naming rule never
flagged `local`, so the seven places that compared a platform's name with "local" passed.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from platforms.core import registry

ROOT = Path(__file__).resolve().parents[2]
PLATFORMS = registry.names()

# The layers, bottom to top, and what a package of each may import (besides itself). A registered platform's
# package is PLATFORM; every other package of platforms/ must be placed here (a new one fails the test until
# it is). Features reach the platforms only through core.registry; the report embeds the scorecard's table.
PLATFORM = "<platform>"
FEATURES = ("bench", "report", "reproduce", "scorecard")
ALLOWED: dict[str, set[str]] = {
    "trainer": set(),
    "platforms": set(),                                       # platforms/__init__.py and errors.py
    "core": {"platforms", "trainer"},
    "image": {"core", "platforms", "trainer"},
    "clouds": {"image", "core", "platforms", "trainer"},
    PLATFORM: {"clouds", "image", "core", "platforms", "trainer"},
    "bench": {"image", "core", "platforms", "trainer"},
    "scorecard": {"core", "platforms", "trainer"},
    "reproduce": {"bench", "image", "core", "platforms", "trainer"},  # a study's protocol run by bench's machinery
    "report": {"reproduce", "scorecard", "image", "core", "platforms", "trainer"},
    "prices": {"core", "platforms", "trainer"},               # price sources → core's price cache
    "cli": {"prices", "reproduce", "bench", "report", "scorecard", "image", "core", "platforms", "trainer"},
}
# top-level modules of platforms/ and the layer they belong to
TOP_MODULES = {"platforms": "platforms", "platforms.errors": "platforms", "platforms.cli": "cli",
               "platforms.__main__": "cli", "platforms.runs_table": "cli", "platforms.preflight": "cli",
               "platforms.reproduce_cli": "cli"}



# ------------------------------------------------------------------------------------------- the graph
@functools.cache
def parsed(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once per test process (the graph, the by-name and the naming checks)."""
    return ast.parse(path.read_text())


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for top in ("platforms", "trainer") for p in sorted((root / top).rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports: at the top, inside a function, or for type checking."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(parsed(path)):
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


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
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


def owner(module: str, platforms: list[str] = PLATFORMS) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "platforms" and parts[1] in platforms else None


def package(module: str) -> str:
    """The package a module belongs to: trainer, a top-level layer of platforms/, or platforms' subpackage."""
    if module.split(".")[0] == "trainer":
        return "trainer"
    if module in TOP_MODULES:
        return TOP_MODULES[module]
    return module.split(".")[1]


def layer(pkg: str, platforms: list[str] = PLATFORMS) -> str | None:
    """The row of ALLOWED a package sits in; None for a package nobody has placed."""
    return PLATFORM if pkg in platforms else pkg if pkg in ALLOWED else None


def edges(g: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(m, d) for m, deps in sorted(g.items()) for d in sorted(deps)]


def package_graph(g: dict[str, set[str]], platforms: list[str] = PLATFORMS) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, d in edges(g):
        a, b = package(m), package(d)
        out.setdefault(a, set())
        if a != b:
            out[a].add(b)
    return out


def layer_violations(g: dict[str, set[str]], platforms: list[str] = PLATFORMS) -> list[str]:
    """`M imports D` for every import its package's layer may not make (a platform's package may import
    only itself of all the platforms)."""
    bad = []
    for m, d in edges(g):
        a, b = package(m), package(d)
        if a != b and layer(b, platforms) not in ALLOWED.get(layer(a, platforms), set()):
            bad.append(f"{m} imports {d}")
    return bad


# ------------------------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def ours() -> dict[str, set[str]]:
    """The import graph of platforms/ and trainer/, parsed once for the module's tests."""
    return graph()


def test_no_import_cycles(ours):
    g = ours
    assert cycles({m: {d for mm, d in edges(g) if mm == m} for m in g}) == []


def test_no_package_cycles(ours):
    assert cycles(package_graph(ours)) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_has_a_place_in_the_layers():
    unplaced = sorted({package(m) for m in modules()} - {p for p in map(package, modules()) if layer(p)})
    assert unplaced == [], "add each to ALLOWED (and to docs/design.md, Layers)"


def test_the_layers_themselves_have_no_cycle():
    assert cycles({row: may - {row} for row, may in ALLOWED.items()}) == []


def test_each_package_imports_only_what_its_layer_may(ours):
    assert layer_violations(ours) == []


def test_shared_modules_import_no_platform(ours):
    bad = [f"{m} imports {d}" for m, d in edges(ours) if m.startswith("platforms") and owner(m) is None
           and owner(d) is not None]
    assert bad == []


def test_a_platform_imports_no_other_platform(ours):
    bad = [f"{m} imports {d}" for m, d in edges(ours) if owner(m) and owner(d) not in (None, owner(m))]
    assert bad == []


def test_a_platform_imports_no_feature(ours):
    bad = [f"{m} imports {d}" for m, d in edges(ours) if owner(m) and package(d) in FEATURES + ("cli",)]
    assert bad == []


def test_trainer_imports_nothing_from_platforms(ours):
    bad = [f"{m} imports {d}" for m, d in edges(ours) if m.startswith("trainer") and d.startswith("platforms")]
    assert bad == []


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_a_function_level_import_from_core_into_bench_fails(tmp_path):
    """The self-test the issue asked for: one import inside a function, and the layers and the package
    cycle both show it (bench imports core at the top, as every feature does)."""
    _write(tmp_path, {"platforms/__init__.py": "", "platforms/errors.py": "", "trainer/__init__.py": "",
                      "platforms/core/launch.py": "def run():\n    from platforms.bench import automl\n",
                      "platforms/bench/automl.py": "from platforms.core import launch\n",
                      "platforms/sagemaker/__init__.py": "from platforms.core import launch\n"})
    g = graph(tmp_path)
    assert g["platforms.core.launch"] == {"platforms.bench.automl"}
    assert layer_violations(g, ["sagemaker"]) == ["platforms.core.launch imports platforms.bench.automl"]
    assert cycles(package_graph(g, ["sagemaker"])) == [["bench", "core"]]


def test_type_checking_imports_count(tmp_path):
    _write(tmp_path, {"platforms/core/registry.py": "if TYPE_CHECKING:\n    from platforms.core.api import Spec\n",
                      "platforms/core/api.py": "def load():\n    from platforms.core import registry\n"})
    assert cycles(graph(tmp_path)) == [["platforms.core.api", "platforms.core.registry"]]


def test_a_platform_importing_a_feature_or_another_platform_fails(tmp_path):
    _write(tmp_path, {"platforms/apolo/endpoint.py": "from platforms.bench.loadtest import HttpTransport\n",
                      "platforms/bench/loadtest.py": "", "platforms/skypilot/train.py":
                      "import platforms.sagemaker.storage\n", "platforms/sagemaker/storage.py": ""})
    assert layer_violations(graph(tmp_path), ["apolo", "sagemaker", "skypilot"]) == [
        "platforms.apolo.endpoint imports platforms.bench.loadtest",
        "platforms.skypilot.train imports platforms.sagemaker.storage"]


# modules that import a third party's module by a name from a table (an SDK, a data-set loader): why
THIRD_PARTY_BY_NAME = {
    "platforms.core.sdk": "imports a platform's SDK by the module names its SPEC lists (sdk_modules)",
    "trainer.data.cifar": "tries the CIFAR-10 unpickler's candidate modules in turn",
}


def test_only_the_registry_imports_by_name():
    """importlib.import_module / __import__ of a name built at run time, or of one of ours: only the
    registry's door (core/registry.py, core/api.py PlatformSpec.load) may load our modules that way."""
    allowed = {"platforms.core.registry", "platforms.core.api", *THIRD_PARTY_BY_NAME}
    bad = []
    for name, path in modules().items():
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module",
                                                                       "__import__") and node.args:
                arg = node.args[0]
                ours = not isinstance(arg, ast.Constant) or str(arg.value).split(".")[0] in ("platforms", "trainer")
                if ours and name not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert bad == []


# ------------------------------------------------------------------------------------------- the names
def _code_strings(tree: ast.AST) -> list[tuple[int, str, bool]]:
    """String constants and names in code, docstrings left out: (line, text, is a string constant)."""
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            out.append((n.lineno, n.value, True))
        elif isinstance(n, ast.Name):
            out.append((n.lineno, n.id, False))
        elif isinstance(n, ast.Attribute):
            out.append((n.lineno, n.attr, False))
    return out


# Platform names that are also the name of a tool shared code legitimately drives for every platform: word →
# why. Such a word is not taken as naming its platform, except in the forms below that can only mean the
# platform package (TOOL_WORD_STILL_NAMES). Keep this table small: every other platform name stays forbidden.
TOOL_WORDS = {
    "docker": "also the Docker SDK, engine, CLI and Dockerfile that platforms/image drives for every platform (and "
              "SageMaker's local_runner=docker)",
}
TOOL_WORD_STILL_NAMES = ("platforms.{}", "platforms/{}", "launch {}")
# Platform names that are everyday words, so they name the platform only as a whole string (a name compared,
# a dict key, a default) or in the forms above; in identifiers and prose (`cfg.local`, "runs locally") they
# are the word.
EVERYDAY_WORDS = {
    "local": "also a cloud launcher's local mode (cfg.local, --set local=true), local files and localhost",
}


def names_platform(text: str, platform: str, tool_words: dict[str, str] = TOOL_WORDS, constant: bool = True,
                   everyday_words: dict[str, str] = EVERYDAY_WORDS) -> bool:
    """Whether a string (`constant`) or a name in code names `platform`."""
    low = text.lower()
    if platform not in low:
        return False
    if platform in tool_words or platform in everyday_words:
        if any(form.format(platform) in low for form in TOOL_WORD_STILL_NAMES):
            return True
        return platform in everyday_words and platform not in tool_words and constant and low.strip() == platform
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


def test_local_is_a_name_like_any_other():
    assert names_platform("local", "local")                   # platform == "local", {"local": 1}, ["local"]
    assert names_platform("e.g. `platbench launch local --devices 2`", "local")
    assert names_platform("platforms.local.train", "local")
    assert not names_platform("local", "local", constant=False)  # cfg.local: a launcher's local mode
    assert not names_platform(" (local mode)", "local")
    assert names_platform("local", "local", everyday_words={}) and names_platform("local mode", "local",
                                                                                 everyday_words={})


def test_every_tool_word_is_a_platform_with_a_reason():
    assert TOOL_WORDS.keys() <= set(PLATFORMS) and all(len(why) > 20 for why in TOOL_WORDS.values())
    assert EVERYDAY_WORDS.keys() <= set(PLATFORMS) and all(len(why) > 20 for why in EVERYDAY_WORDS.values())


def forbidden_names(module: str) -> list[str]:
    """The platforms a module may not name: all of them outside the platforms' packages; inside one, every
    other platform except those whose name is part of its own (vertex in vertex_automl) and the everyday words
    (a launcher's SDK says "local" for its own local mode: SageMaker's instance_type="local")."""
    own = owner(module)
    if own is None:
        return PLATFORMS
    return [p for p in PLATFORMS if p not in own and p not in EVERYDAY_WORDS]


def naming_violations() -> tuple[list[str], list[str]]:
    """(`FILE names PLATFORM` for each file that names a platform it may not, the lines that do)."""
    files, lines = [], []
    for name, path in modules().items():
        if not name.startswith("platforms"):
            continue
        rel = path.relative_to(ROOT)
        for line, text, constant in _code_strings(parsed(path)):
            for platform in forbidden_names(name):
                if names_platform(text, platform, constant=constant):
                    if f"{rel} names {platform}" not in files:
                        files.append(f"{rel} names {platform}")
                    lines.append(f"{rel}:{line}: {text[:80]!r} names {platform}")
    return files, lines


@pytest.fixture(scope="module")
def named() -> tuple[list[str], list[str]]:
    return naming_violations()


def test_no_shared_module_names_a_platform_in_code(named):
    files, lines = named
    assert [line for line in lines if owner(module_name(ROOT / line.partition(":")[0])) is None] == []
    assert [f for f in files if owner(module_name(ROOT / f.partition(" ")[0])) is None] == []


def test_a_platform_names_no_other_platform(named):
    """The back door beside imports: another platform's extra, store or name in a string."""
    assert [line for line in named[1] if owner(module_name(ROOT / line.partition(":")[0]))] == []
