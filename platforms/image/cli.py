"""`platbench image …`: build the image, push it to a platform's registry (docs/design.md; issue 18)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import List, Optional

import typer

from platforms.core import registry
from platforms.errors import UserError

REGISTRY_PLATFORMS = " | ".join(n for n in registry.names() if registry.spec(n).image_login) or "none registered"

app = typer.Typer(help="The platbench image: build it from the Dockerfile, push it to a platform's registry.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)


def _console():
    from rich.console import Console

    return Console(stderr=True)


@app.command("build")
def build_cmd(
    context: Path = typer.Option(Path("."), "--context", help="folder holding the Dockerfile (default: here)"),
    tag: str = typer.Option("platbench:latest", "--tag", help="name:tag for the image"),
    build_arg: List[str] = typer.Option([], "--build-arg", help="KEY=VALUE passed to the Dockerfile (repeatable)"),
    network: Optional[str] = typer.Option(None, "--network", help="the build's network mode (e.g. host)"),
) -> None:
    """Build the Dockerfile through the Docker SDK; print and record the image's digest (.platbench/image.json)."""
    from rich.progress import BarColumn, Progress, TextColumn

    from platforms.image import build, engine
    from trainer import image_record

    args = build.build_args(context, build_arg)
    client = engine.api()
    # a fresh id per build, baked into the image's last step (Dockerfile): a container started from this
    # folder finds this record of itself by it (trainer/image_record.py)
    build_id = args[image_record.BUILD_ID] = uuid.uuid4().hex
    log_path = engine.RECORD.parent / "build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console = _console()
    with log_path.open("w") as log, Progress(TextColumn("{task.description}"), BarColumn(),
                                             TextColumn("step {task.completed}/{task.total}"),
                                             console=console, transient=True) as bar:
        task = bar.add_task("building", total=None)

        def on_step(n: int, total: int, text: str) -> None:
            bar.update(task, completed=n, total=total, description=text)
            if not console.is_terminal:
                console.print(f"step {n}/{total}: {text}")

        image = build.build(client, context.resolve(), tag, args, on_step, log, network)
    pins = build.lock_versions(context)
    record = image_record.ImageRecord(image=tag, id=image, build_id=build_id, build_args=args,
                                      versions={k: pins[k] for k in build.SHOWN if k in pins})
    engine.write_record(record)
    typer.echo(f"built {tag}: {image}")
    typer.echo(f"image ID {image} (its config digest: the registry's manifest names it as config.digest, runs "
               "record it as image_id); build id " + build_id)
    typer.echo("stack (constraints.txt): " + ", ".join(f"{k} {v}" for k, v in record.versions.items()))
    typer.echo(f"recorded in {engine.RECORD}")


@app.command("push")
def push_cmd(
    target: str = typer.Argument(..., help=f"a platform's registry ({REGISTRY_PLATFORMS}) or a repository HOST[:PORT]/PATH"),
    image: Optional[str] = typer.Option(None, "--image", help="local image (default: the one `image build` recorded)"),
    tag: Optional[str] = typer.Option(None, "--tag", help="the tag to push (default: the image ID's first 12 digits)"),
    set_: List[str] = typer.Option([], "--set", help="the registry's KEY=VALUE (region, project, repository …)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the login and push commands; contact nothing"),
) -> None:
    """Log in to TARGET's registry, push the image, and check the registry's digest is the one pushed."""
    from platforms.core.settings import parse_pairs
    from platforms.image import engine, push

    settings = parse_pairs(set_, "--set")
    login = _login(target, settings, dry_run)
    record = engine.read_record()
    name = image or (record.image if record else "platbench:latest")
    if dry_run:
        ident = record.id if record and name == record.image else None
        shown = tag or (ident.split(":", 1)[1][:12] if ident else "TAG")
        typer.echo(f"Plan: push {name} to {login.repository} — nothing is contacted:")
        for i, cmd in enumerate(push.commands(login, name, shown), 1):
            typer.echo(f"{i:2d}. $ {cmd}")
        return
    client = engine.api()
    ident, _ = engine.image_id(client, name)
    if record and name == record.image and record.id != ident:
        raise UserError(f"{name} is {ident} in the engine, but {engine.RECORD} recorded {record.id}: "
                        "build it again (platbench image build)")
    tag = tag or ident.split(":", 1)[1][:12]
    layers: dict[str, str] = {}

    def on_layer(layer: str, status: str, detail: dict) -> None:
        if layers.get(layer) != status:
            layers[layer] = status
            if status not in ("Pushing", "Preparing", "Waiting"):
                typer.echo(f"  {layer}: {status}", err=True)

    digest = push.push(client, name, login, tag, on_layer)
    pinned = f"{login.repository}@{digest}"
    if record and record.id == ident:  # what launchers check a tag against (platforms/image/pinning.py)
        record.pushed[login.repository] = digest
        record.tags[f"{login.repository}:{tag}"] = digest
        engine.write_record(record)
    typer.echo(f"pushed {name} (image ID {ident}) as {login.repository}:{tag}")
    typer.echo(f"registry digest {digest} (the manifest's, read back from {login.registry}: what a platform pulls)")
    typer.echo(f"launch with: --set {login.setting}={pinned}")


def _login(target: str, settings: dict[str, str], dry_run: bool):
    from platforms.image import push

    if target in registry.names():
        spec = registry.spec(target)
        if not spec.image_login:
            raise UserError(f"{target} runs no image from a registry of its own; push to a repository HOST/PATH instead")
        return spec.login(settings, dry_run=dry_run)
    login = push.repository_login(target)
    if login is None:
        raise UserError(f"unknown registry {target!r}: give a platform ({REGISTRY_PLATFORMS}) or a repository "
                        "HOST[:PORT]/PATH such as 127.0.0.1:5000/platbench")
    if settings:
        raise UserError(f"a repository takes no --set options (got {', '.join(settings)})")
    return login
