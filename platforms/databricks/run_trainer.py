"""platbench: the trainer's CLI, run by a Databricks spark_python_task (the wheel is the task's library).

A Unity Catalog volume's FUSE mount takes no direct appends and no random writes ("perform the operations on a
local disk first and then copy the results to Unity Catalog volumes":
https://docs.databricks.com/en/volumes/volume-files.html), and the trainer appends to train.log and
metrics.jsonl. So the trainer writes its --out on the driver's local disk: this script first copies there what
the volume's --out already holds (an interrupted run's checkpoints, for the resume), then copies the folder back
after each epoch-end checkpoint and once more at the end, each changed file written whole.
It is uploaded as the task's python_file, so it imports only the standard library and the trainer."""
import shutil
import sys
import tempfile
import threading
from pathlib import Path

POLL_SECONDS = 2.0


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def copy_changed(src: Path, dst: Path, sent: dict) -> None:
    """Every file of src not yet copied in its current state, written whole into dst (never appended to). A
    checkpoint being written (the trainer's .tmp, renamed into place when complete) is left for the next copy."""
    for path in sorted(p for p in src.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
        try:
            rel, stamp = path.relative_to(src), _stamp(path)
            if sent.get(rel) == stamp:
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel)
        except FileNotFoundError:  # replaced meanwhile: its new version is copied next time
            continue
        sent[rel] = stamp


def _newest(folder: Path):
    """The stamp of the newest complete file in `folder` (None: none yet): an epoch-end checkpoint changes it.
    Watched by folder, not by the trainer's checkpoint file name: that constant's module (trainer.recorder)
    imports Lightning, seconds before the trainer has even checked its data."""
    stamps = []
    for path in folder.glob("*"):
        try:
            if path.is_file() and not path.name.endswith(".tmp"):
                stamps.append(_stamp(path)[::-1])
        except FileNotFoundError:  # renamed meanwhile
            continue
    return max(stamps, default=None)


def run(argv: list[str]) -> int:
    from trainer.cli import main

    args = list(argv)
    if "--out" not in args:
        return main(args)
    i = args.index("--out") + 1
    volume_out = Path(args[i])
    local = Path(tempfile.mkdtemp(prefix="platbench-out-"))
    sent: dict = {}
    if volume_out.is_dir():
        shutil.copytree(volume_out, local, dirs_exist_ok=True)
        sent = {p.relative_to(local): _stamp(p) for p in local.rglob("*") if p.is_file()}
    args[i] = str(local)
    checkpoints = local / "checkpoints"
    done, lock = threading.Event(), threading.Lock()

    def at_checkpoints() -> None:
        last = _newest(checkpoints)
        while not done.wait(POLL_SECONDS):
            now = _newest(checkpoints)
            if now != last:
                last = now
                try:
                    with lock:
                        copy_changed(local, volume_out, sent)
                except OSError as exc:  # the volume briefly unavailable: the next checkpoint or the end copies it
                    print(f"platbench: copying {local} to {volume_out} failed: {exc}", file=sys.stderr)

    watcher = threading.Thread(target=at_checkpoints, daemon=True)
    watcher.start()
    try:
        return main(args)
    finally:
        done.set()
        watcher.join()
        with lock:
            copy_changed(local, volume_out, sent)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
