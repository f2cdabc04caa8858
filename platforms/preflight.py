"""Checks of a command's own inputs that need nothing imported beyond the standard library: an output path
that can be made, and an MLflow store that can be read. Each refuses in one line (UserError) before the
command creates a folder, a store or a run."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from platforms.errors import UserError


def output_folder(path: Path, flag: str = "--out") -> None:
    """`path` is, or can be made as, a folder: neither it nor a folder above it is a file, and the nearest
    existing one is writable."""
    _writable_place(path, flag)


def output_file(path: Path, flag: str = "--out") -> None:
    """`path` is, or can be written as, a file: not a folder, and its folder can be made."""
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    _writable_place(path.parent, flag, named=path)


def _writable_place(path: Path, flag: str, named: Path | None = None) -> None:
    named = named or path
    for place in [path, *path.parents]:
        if place.is_dir():
            if not os.access(place, os.W_OK | os.X_OK):
                raise UserError(f"{flag} {named}: {place} is not writable")
            return
        if place.exists():
            raise UserError(f"{flag} {named} is a file, not a folder" if place == named
                            else f"{flag} {named} cannot be made: {place} is a file")


def tracking_store(uri: str) -> None:
    """The MLflow store at `uri` can be read, when it is a local sqlite file that exists (one that does not is
    made by the first run; a server answers for itself)."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if not path.exists():
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            db.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise UserError(f"the MLflow store {path} cannot be read ({exc}); point MLFLOW_TRACKING_URI at a "
                        "working store, or move that file away") from None


def store_exists(uri: str, what: str) -> None:
    """A run looked up by id in a local sqlite store that does not exist yet is refused without making it."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise UserError(f"{what} matches no runs: there is no MLflow store at {uri[len('sqlite:///'):]} yet "
                        "(run `platbench launch` here first, or set MLFLOW_TRACKING_URI)")
