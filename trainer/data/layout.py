"""The on-disk dataset layouts and their validation.

- "folder" (the custom-dataset layout of the original benchmark): `train/<class>/*.png|jpg`,
  `test/<class>/*.png|jpg`; classes are the folder names.
- "cifar-python": the CIFAR-10 python batches (`data_batch_1..5`, `test_batch`, `batches.meta`),
  either in the folder itself or in its `cifar-10-batches-py/` subfolder (torchvision's download).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CIFAR_BATCH_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*CIFAR_TRAIN_BATCHES, "test_batch", "batches.meta")


@dataclass(frozen=True)
class FolderSplit:
    files: list[Path]
    labels: list[int]


@dataclass(frozen=True)
class FolderDataset:
    root: Path
    classes: list[str]
    train: FolderSplit
    test: FolderSplit


def cifar_batch_dir(root: Path) -> Path | None:
    for candidate in (root, root / CIFAR_BATCH_DIR):
        if (candidate / "data_batch_1").is_file():
            return candidate
    return None


def detect_format(root: Path) -> str:
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"dataset path {root} is not a folder")
    if cifar_batch_dir(root) is not None:
        return "cifar-python"
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "folder"
    raise DataError(
        f"{root} is not a dataset: expected train/<class>/ and test/<class>/ image folders "
        f"or the CIFAR-10 python batches (data_batch_1 … test_batch)"
    )


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    if not split_dir.is_dir():
        raise DataError(f"missing folder {split_dir} (the layout is train/<class>/ and test/<class>/)")
    dirs = {p.name: p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if not dirs:
        raise DataError(f"{split_dir} has no class folders")
    return dirs


def _images(class_dir: Path) -> list[Path]:
    return sorted(
        p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def check_classes(classes: list[str], where: Path) -> None:
    """A classifier of one class learns nothing and scores 100%: refused before anything is decoded."""
    if len(classes) < 2:
        raise DataError(f"{len(classes)} class ({', '.join(classes)}) in {where}: a classifier needs at least 2 "
                        "classes (one folder per class)")


def scan_folder(root: Path) -> FolderDataset:
    """List the images of a folder dataset, checking that train and test agree on the classes."""
    train_dirs, test_dirs = _class_dirs(root / "train"), _class_dirs(root / "test")
    if set(train_dirs) != set(test_dirs):
        only_train = sorted(set(train_dirs) - set(test_dirs))
        only_test = sorted(set(test_dirs) - set(train_dirs))
        parts = [f"only in train: {', '.join(only_train)}" if only_train else "",
                 f"only in test: {', '.join(only_test)}" if only_test else ""]
        raise DataError(f"train and test class folders differ ({'; '.join(p for p in parts if p)})")
    classes = sorted(train_dirs)
    check_classes(classes, root / "train")
    splits = {}
    for split, dirs in (("train", train_dirs), ("test", test_dirs)):
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(classes):
            images = _images(dirs[name])
            if not images:
                raise DataError(f"class {name!r} has no images in {dirs[name]} (.png or .jpg expected)")
            files += images
            labels += [label] * len(images)
        splits[split] = FolderSplit(files, labels)
    return FolderDataset(root, classes, splits["train"], splits["test"])


def fingerprint_files(root: Path, files: list[Path], contents: list[bytes] | None = None) -> str:
    """sha256 over (relative path, content) of every file, in sorted order: a dataset's identity.

    `contents`: the files' bytes in `files` order, when the caller has read them (to decode them next)."""
    digest = hashlib.sha256()
    order = sorted(range(len(files)), key=files.__getitem__)
    for i in order:
        digest.update(files[i].relative_to(root).as_posix().encode() + b"\0")
        data = contents[i] if contents is not None else files[i].read_bytes()
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


def fingerprint(root: Path) -> str:
    fmt = detect_format(root)
    if fmt == "cifar-python":
        batch_dir = cifar_batch_dir(root)
        assert batch_dir is not None
        missing = [name for name in CIFAR_FILES if not (batch_dir / name).is_file()]
        if missing:
            raise DataError(f"CIFAR-10 batches in {batch_dir} are incomplete: missing {', '.join(missing)}")
        return fingerprint_files(batch_dir, [batch_dir / name for name in CIFAR_FILES])
    ds = scan_folder(root)
    return fingerprint_files(root, ds.train.files + ds.test.files)
