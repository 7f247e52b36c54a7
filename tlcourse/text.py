"""Text classification with BERT-like encoders: from texts to padded batches."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tlcourse.checks import check_int
from tlcourse.runtime import make_generator



def validate_texts_and_labels(texts: Sequence[str], labels: Sequence[int] | None,
                              label_set: Sequence[int] | None = None) -> None:
    """Check a text data set before tokenising it."""
    if isinstance(texts, str):  # a lone string would be read as a list of its characters
        raise TypeError(f"texts must be a list of strings, got a single string {texts[:40]!r}; wrap it: [text]")
    for name, values in (("texts", texts), ("labels", labels)):
        if values is not None and not hasattr(values, "__len__"):
            raise TypeError(f"{name} must be a list, one per document, got {type(values).__name__}")
    if texts is None:
        raise TypeError("texts must be a list of strings, got None")
    if len(texts) == 0:
        raise ValueError("texts is empty: a text data set needs at least one document")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"every text must be a str; index {bad[0]} is {type(texts[bad[0]]).__name__}")
    if labels is None:
        return
    if len(labels) != len(texts):
        raise ValueError(f"texts and labels differ in length: {len(texts)} texts, {len(labels)} labels")
    if label_set is not None:
        allowed = set(label_set)
        outside = [(i, y) for i, y in enumerate(labels) if y not in allowed]
        if outside:
            index, value = outside[0]
            raise ValueError(f"labels[{index}] = {value!r}: label {value!r} is outside the label set {sorted(allowed)}")


def encode(tokenizer: Any, texts: Sequence[str], max_length: int,
           truncation: bool | str = "longest_first") -> list[dict[str, list[int]]]:
    """Tokenise texts one by one, truncated but NOT padded (padding happens per batch)."""
    validate_texts_and_labels(texts, None)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2 (room for [CLS] and [SEP]), got {max_length!r}")
    if truncation is False:
        raise ValueError("truncation=False would let texts exceed the model's maximum length; "
                         "choose a strategy such as 'longest_first'")
    encoded = tokenizer(list(texts), truncation=truncation, max_length=max_length, padding=False)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded]
    return [{k: list(encoded[k][i]) for k in keys} for i in range(len(texts))]


class TextClassificationDataset(Dataset):
    """Tokenised texts with labels; items are unpadded dicts with a ``"labels"`` int."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer: Any, max_length: int,
                 label_set: Sequence[int] = (0, 1), truncation: bool | str = "longest_first") -> None:
        validate_texts_and_labels(texts, labels, label_set)
        self.texts = list(texts)
        self.labels = [int(y) for y in labels]
        self.encodings = encode(tokenizer, self.texts, max_length, truncation)

    def __len__(self) -> int:
        return len(self.encodings)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.encodings[index], "labels": self.labels[index]}

    def lengths(self) -> list[int]:
        """Token count of every item (after truncation)."""
        return [len(e["input_ids"]) for e in self.encodings]


class PaddingCollator:
    """Pad a list of unpadded items to the longest in the batch (dynamic padding).

    ``transformers.DataCollatorWithPadding`` gives the same tensors from a tokenizer; this one needs only
    ``pad_token_id`` and can pad to a fixed length, the baseline the benchmarks and bert's page compare with.
    """

    def __init__(self, pad_token_id: int, padding_side: str = "right", pad_to_length: int | None = None) -> None:
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        check_int("pad_token_id", pad_token_id, minimum=0)
        if pad_to_length is not None:
            check_int("pad_to_length", pad_to_length)
        self.pad_token_id = int(pad_token_id)
        self.padding_side = padding_side
        self.pad_to_length = pad_to_length

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if len(items) == 0:
            raise ValueError("cannot collate an empty batch")
        longest = max(len(item["input_ids"]) for item in items)
        width = longest if self.pad_to_length is None else self.pad_to_length
        if width < longest:
            raise ValueError(f"an item has {longest} tokens, more than pad_to_length={width}")
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0}
        batch: dict[str, torch.Tensor] = {}
        for key, value in fill.items():
            if key not in items[0]:
                continue
            rows = []
            for item in items:
                padding = [value] * (width - len(item[key]))
                rows.append(list(item[key]) + padding if self.padding_side == "right" else padding + list(item[key]))
            batch[key] = torch.tensor(rows, dtype=torch.long)  # (batch, width)
        if "labels" in items[0]:
            batch["labels"] = torch.tensor([int(item["labels"]) for item in items], dtype=torch.long)
        return batch


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of examples with similar lengths, in an order that depends only on ``seed``.

    Kept, not transformers' ``LengthGroupedSampler`` (another order): bert and peft train on these batches, which
    pad about half as much, and their measured numbers depend on this order. The longest batch comes first.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, group_batches: int = 50) -> None:
        if not hasattr(lengths, "__len__"):
            raise TypeError(f"lengths must be a list of token counts, got {type(lengths).__name__}")
        if len(lengths) == 0:
            raise ValueError("lengths is empty: expected at least one example")
        check_int("batch_size", batch_size)
        check_int("group_batches", group_batches)
        self.lengths = [int(n) for n in lengths]
        self.batch_size = batch_size
        self.group_batches = group_batches
        self.generator = make_generator(seed)

    def __len__(self) -> int:
        group = self.batch_size * self.group_batches
        full, rest = divmod(len(self.lengths), group)
        return full * self.group_batches + math.ceil(rest / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        group = self.batch_size * self.group_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), group):
            chunk = sorted(order[start:start + group], key=lambda i: self.lengths[i], reverse=True)
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
        longest = max(range(len(batches)), key=lambda b: max(self.lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
        return iter(batches)


def length_grouped_loader(dataset: TextClassificationDataset, batch_size: int, seed: int = 0,
                          collate_fn: Callable | None = None, num_workers: int = 0,
                          group_batches: int = 50) -> DataLoader:
    """A training DataLoader over :class:`LengthGroupedBatchSampler` batches."""
    if not isinstance(dataset, TextClassificationDataset):
        raise TypeError(f"dataset must be a TextClassificationDataset (it knows each text's length), got {type(dataset).__name__}")
    sampler = LengthGroupedBatchSampler(dataset.lengths(), batch_size, seed=seed, group_batches=group_batches)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                      generator=sampler.generator, persistent_workers=num_workers > 0)
