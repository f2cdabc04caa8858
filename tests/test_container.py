"""The image, checked without an engine: the Dockerfile linted, the compose file validated against the
compose schema, and the exact command lines the image runs executed natively."""
from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import tomllib
from pathlib import Path

import yaml
from conftest import REPO, VENV_BIN, run_cmd

from mlflow.tracking import MlflowClient
from stand_in import stand_in  # noqa: F401 (fixture)
from trainer.results import read_results


def test_dockerfile_passes_hadolint():
    proc = run_cmd([str(VENV_BIN / "hadolint"), str(REPO / "Dockerfile")])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_contract():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim-\w+@sha256:[0-9a-f]{64}$", text, re.M)
    assert "COPY docker/train docker/serve /usr/local/bin/" in text
    for path in ("docker/train", "docker/serve"):
        assert os.access(REPO / path, os.X_OK)


def test_root_on_the_platforms_and_the_non_root_user_locally():
    """Issue 12 item 3: SageMaker expects root and mounts /opt/ml/{model,output,checkpoints} owned by root,
    so the image's default user is root; the non-root user (uid 1000) exists for local runs, and the
    compose service runs as it (or the caller's PLATBENCH_UID), never as the image's default."""
    steps = instructions(REPO / "Dockerfile")
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] in ("0:0", "0", "root"), users
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert re.search(r"useradd [^&;]*--uid 1000 ", runs)
    assert not re.search(r"chown[^&;]*/opt/ml", runs), "the SageMaker folders must stay root's, as mounted"
    svc = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())["services"]["trainer"]
    assert svc["user"] == "${PLATBENCH_UID:-1000}:${PLATBENCH_GID:-1000}"


def image_requirements() -> set[str]:
    """Canonical names of every distribution the image's `pip install .[extras]` brings in: platbench's
    dependencies plus the extras named in the Dockerfile, and theirs, recursively (markers evaluated
    here, as the Dockerfile's Linux build would)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    steps = instructions(REPO / "Dockerfile")
    (spec,) = [w for word, args in steps if word == "RUN" for words in pip_installs(args)
               for w in words if w.startswith(".")]
    extras = set(re.fullmatch(r"\.(?:\[([\w,-]+)\])?", spec)[1].split(",")) if "[" in spec else set()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]  # this tree's, not the venv's
    lines = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    want, seen = [], set()
    for line in lines:
        req = Requirement(line)
        if not req.marker or req.marker.evaluate():
            want.append((canonical(req.name), frozenset(req.extras)))
    while want:
        name, ext = want.pop()
        if (name, ext) in seen:
            continue
        seen.add((name, ext))
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue  # an optional dependency not installed here: its own requirements are not needed
        for line in reqs:
            req = Requirement(line)
            env_ok = [not req.marker or req.marker.evaluate({"extra": e}) for e in ext or {""}]
            if any(env_ok):
                want.append((canonical(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def canonical(name: str) -> str:  # https://packaging.python.org/en/latest/specifications/name-normalization/
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_holds_every_module_the_trainer_imports():
    """Issue 12 item 2: what runs in the image (trainer/: train, serve) imports only what the image
    installs. Every import in trainer/ — at the top or lazily inside a function, as serve's gs://
    download imports google.cloud.storage for Vertex AI's AIP_STORAGE_URI — comes from the standard
    library, the trainer itself, or a distribution the Dockerfile's install brings in."""
    import ast
    import sys

    installed = image_requirements()
    missing = {}
    for path in sorted((REPO / "trainer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module + "." + a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in sys.stdlib_module_names or name.split(".")[0] in ("trainer", "__future__"):
                    continue
                by = module_owners(name)
                if not by & installed:
                    missing[f"{path.relative_to(REPO)}: {name}"] = sorted(by) or ["not installed here"]
    assert not missing, f"imported in the image but not installed by the Dockerfile: {missing}"


def module_owners(name: str) -> set[str]:
    """The distributions whose RECORD ships the longest importable prefix of `name` (google.* is a namespace
    shared by many distributions)."""
    parts = name.split(".")
    shipped = _shipped(parts[0])
    return next((shipped[".".join(parts[:i])] for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in shipped),
                set())


@functools.cache
def _shipped(top: str) -> dict[str, set[str]]:
    """Module name → distributions, for the modules under one top-level name (only the distributions
    packages_distributions() names for it are read)."""
    from importlib.metadata import distribution

    shipped: dict[str, set[str]] = {}
    for dist in set(_top_levels().get(top, [])):
        d = distribution(dist)
        owner = canonical(d.metadata["Name"])
        for f in d.files or []:
            if f.parts and f.parts[0] == top and f.name.endswith((".py", ".so", ".pyd")):
                stem = f.name.split(".")[0]
                mod = list(f.parts[:-1]) if stem == "__init__" else [*f.parts[:-1], stem]
                shipped.setdefault(".".join(mod), set()).add(owner)
    return shipped


@functools.cache
def _top_levels() -> dict[str, list[str]]:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction of a Dockerfile, continuation lines joined and comment
    lines dropped, as the builder reads them (https://docs.docker.com/reference/dockerfile/#format)."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\") and pending:
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def pip_installs(args: str) -> list[list[str]]:
    """The arguments after `pip install` of each pip install command in a RUN's shell line (quotes kept
    whole; a command ends at the next shell operator)."""
    lexer = shlex.shlex(args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    found = []
    for i in range(len(words) - 1):
        if words[i] == "pip" and words[i + 1] == "install":
            rest = words[i + 2:]
            end = next((j for j, w in enumerate(rest) if set(w) <= set("();<>|&")), len(rest))
            found.append(rest[:end])
    return found


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_the_image_installs_exactly_the_lock():
    """Issue 10, one software stack: every pip install in the Dockerfile goes through constraints.txt itself
    (COPYed as it is, never filtered or rewritten), torch and torchvision included, and the build fails on
    anything installed outside it; so the image gets the versions native runs get from scripts/setup."""
    steps = instructions(REPO / "Dockerfile")
    assert ("COPY", "constraints.txt ./") in steps
    runs = [args for word, args in steps if word == "RUN"]
    installs = [a for run in runs for a in pip_installs(run)]
    lock_installs = []
    for words in installs:
        if all(re.fullmatch(r"pip==[\w.]+", w) for w in words):
            continue  # the installer itself, pinned: not a package of the image
        assert words[:2] == ["-c", "constraints.txt"], f"pip install {' '.join(words)}: not through the lock"
        assert not {"-r", "--requirement", "--no-deps", "--upgrade", "-U"} & set(words), words
        lock_installs.append(words[2:])
    installed = {w for words in lock_installs for w in words}
    assert {"torch", "torchvision", "lightning"} <= installed, installed
    assert any(re.fullmatch(r"\.(\[[\w,-]+\])?", w) for w in installed), installed  # platbench itself
    pins = lock_pins()
    assert {"torch", "torchvision", "lightning", "triton"} <= pins.keys()
    for run in runs:  # the lock is used as COPYed: nothing writes, filters or replaces it
        assert not re.search(r"(>|\btee\b|\bsed\b|\bmv\b|\bcp\b)[^&;|]*constraints\.txt", run), run
    assert any("pip freeze" in run and "grep -ivxFf constraints.txt" in run for run in runs)


# Debian's python3 per release (https://packages.debian.org/bookworm/python3, …/trixie/python3).
DEBIAN_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


def test_the_stand_in_base_is_the_real_base_without_a_registry():
    """scripts/image-test builds on docker/base instead of the pinned python image: same Debian release, same
    Python minor (the lock's), and nothing of the lock in it, so the real Dockerfile's install is tested."""
    text = (REPO / "Dockerfile").read_text()
    minor, release = re.search(r"^ARG BASE_IMAGE=python:(3\.\d+)-slim-(\w+)@", text, re.M).groups()
    assert re.search(r"^ARG LOCK_PYTHON=(\S+)$", text, re.M)[1] == minor
    script = (REPO / "scripts/image-test").read_text()
    # the root file system: mmdebstrap with ROOTFS_ARGS, whose last word is the Debian suite
    (suite,) = re.findall(r"^ROOTFS_ARGS=\(.*--include=\S*python3\S* (\w+)\)$", script, re.M)
    assert re.search(r"^\s*(background \w+ )?mmdebstrap .*\$\{ROOTFS_ARGS\[@\]\}", script, re.M)
    assert suite == release and DEBIAN_PYTHON[suite] == minor
    stand_in = instructions(REPO / "docker/base/Dockerfile")
    pins = lock_pins()
    for word, args in stand_in:
        if word == "RUN":
            for words in pip_installs(args):
                names = {re.split(r"[=<>!~\[]", w)[0].lower() for w in words if not w.startswith("-")}
                assert names <= {"pip", "setuptools", "wheel"} and not names & pins.keys(), words


def test_compose_file_matches_the_compose_schema():
    proc = run_cmd([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                    str(REPO / "docker-compose.gpu.yml")], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_trainer_reserves_gpus_and_mounts_the_project():
    doc = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
    svc = doc["services"]["trainer"]
    (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert svc["working_dir"].startswith("${PWD")
    assert any(v.startswith("${PWD") for v in svc["volumes"])


def _native(tmp_path: Path) -> dict:
    """PATH with the venv first, as the image has python and platbench on PATH."""
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}


def test_train_executable_under_the_sagemaker_layout(stand_in, tmp_path):
    """docker/train with the stand-in trainer (tests/stand_in): what is tested is the executable and the folders
    SageMaker names (trainer/cli.py and trainer/environment.py, the real trainer's), not training; the real
    trainer runs under this layout in the image (tests/image/test_image.py)."""
    root = tmp_path / "opt_ml"
    shutil.copytree(stand_in.data, root / "input/data/training")
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({"epochs": "2", "batch_size": "32"}))
    env = {**_native(tmp_path), "PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "pb-test-1", **stand_in.env()}
    proc = run_cmd([str(REPO / "docker/train")], cwd=tmp_path, env=env)  # SageMaker: `docker run IMAGE train`
    assert proc.returncode == 0, proc.stderr
    res = read_results(root / "output/data")
    assert res.platform == "sagemaker" and res.job_id == "pb-test-1" and res.epochs_completed == 2
    assert (root / "model/model.pt").is_file() and (root / "checkpoints/last.ckpt").is_file()
    assert "- Test accuracy: " in proc.stdout


def test_train_executable_failure_is_reported_to_sagemaker(tmp_path):
    root = tmp_path / "opt_ml"
    (root / "input/config").mkdir(parents=True)
    (root / "input/config/hyperparameters.json").write_text("{}")
    env = {**_native(tmp_path), "PLATBENCH_OPT_ML": str(root), "TRAINING_JOB_NAME": "j"}
    proc = run_cmd([str(REPO / "docker/train")], cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "does not exist" in (root / "output/failure").read_text()


def test_compose_command_runs_natively(stand_in, tmp_path):
    """The service's command line (data prepare --if-missing, then launch local with the caller's model and
    target) with the stand-in trainer (tests/stand_in): what is tested is the command, not training; the real
    trainer runs the compose service in the image (tests/image/test_image.py) and `launch local` here
    (tests/local)."""
    doc = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())
    command = doc["services"]["trainer"]["command"]
    assert command[:2] == ["sh", "-c"]
    script = command[2].replace("$$", "$")  # compose's escape for a literal $
    shutil.copytree(stand_in.data, tmp_path / "data/cifar10")  # already prepared: --if-missing skips the download
    env = {**_native(tmp_path), "PLATBENCH_MODEL": "small", "PLATBENCH_TARGET": "0.5", **stand_in.env()}
    proc = run_cmd(["sh", "-c", script], cwd=tmp_path, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr
    (out,) = (tmp_path / "runs").iterdir()
    assert read_results(out).target_accuracy == 0.5
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("platbench").experiment_id])
    assert run.info.status == "FINISHED"
