"""The BERT chapter's settings (:data:`SETTINGS`), its three splits by film and its table of confident
mistakes; the training itself is written out in book/bert.md."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from tlcourse.assets import is_cached, resolve
from tlcourse.checks import check_int
from tlcourse.data import download_asset, load_rotten_tomatoes_snippets, load_sst2, split_by_group
from tlcourse.metrics import most_confident_mistakes
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import make_generator

__all__ = ["BertSettings", "SETTINGS", "METHODS", "SentimentSplits", "load_sentiment_splits", "mistakes_table"]


@dataclass(frozen=True)
class BertSettings:
    """Sizes of the BERT chapter's runs under one profile; the two grids are tried on validation.

    ``freeze_word_embeddings`` keeps the word embeddings as pretrained (a cheaper CPU step, fewer weights
    fitted to a few hundred texts); ``layerwise_decay`` is the factor per layer of the printed groups.
    """

    text_model: str
    dataset: str
    pooling: str
    max_train_examples: int
    max_validation_examples: int
    max_test_examples: int
    num_epochs: int
    batch_size: int
    max_length: int
    max_steps_per_epoch: int | None
    freeze_word_embeddings: bool
    learning_rates: tuple[float, ...]
    probe_learning_rates: tuple[float, ...]
    probe_epochs: int
    warmup_fraction: float
    num_seeds: int
    layerwise_decay: float


SETTINGS: dict[str, BertSettings] = {
    "smoke": BertSettings(text_model="minilm-l6", dataset="rotten-tomatoes-snippets", pooling="mean",
                          max_train_examples=32, max_validation_examples=16, max_test_examples=16, num_epochs=2,
                          batch_size=8, max_length=32, max_steps_per_epoch=1, freeze_word_embeddings=True,
                          learning_rates=(1e-4, 2e-4), probe_learning_rates=(1e-2,), probe_epochs=2,
                          warmup_fraction=0.1, num_seeds=2, layerwise_decay=0.8),
    # MiniLM-L6: a sentence encoder trained with mean pooling (its pooler was not). One epoch over more
    # snippets beat more passes over fewer on validation (book/settings.md); few steps: a grid above BERT's 2e-5
    "cpu": BertSettings(text_model="minilm-l6", dataset="rotten-tomatoes-snippets", pooling="mean",
                        max_train_examples=1536, max_validation_examples=320, max_test_examples=640,
                        num_epochs=1, batch_size=16, max_length=64, max_steps_per_epoch=None,
                        freeze_word_embeddings=True, learning_rates=(1e-4, 2e-4),
                        probe_learning_rates=(1e-3, 3e-3, 1e-2), probe_epochs=10,
                        warmup_fraction=0.1, num_seeds=3, layerwise_decay=0.8),
    "gpu": BertSettings(text_model="bert-base-uncased", dataset="sst2", pooling="cls", max_train_examples=10**9,
                        max_validation_examples=2000, max_test_examples=10**9, num_epochs=3, batch_size=32,
                        max_length=128, max_steps_per_epoch=None, freeze_word_embeddings=False,
                        learning_rates=(2e-5, 3e-5, 5e-5), probe_learning_rates=(1e-3, 3e-3, 1e-2), probe_epochs=20,
                        warmup_fraction=0.1, num_seeds=3, layerwise_decay=0.9),
}


METHODS = ("full fine-tuning", "LP-FT")


@dataclass(frozen=True)
class SentimentSplits:
    """Train, validation and test texts (label 1 positive or fresh); validation and test shortest first."""

    dataset: str
    train_texts: list[str]
    train_labels: list[int]
    validation_texts: list[str]
    validation_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    description: str


def _capped(indices: Sequence[int], count: int, generator: torch.Generator) -> list[int]:
    # a random subset, so that a cap does not keep only the first films or sentences of the file
    return [indices[i] for i in torch.randperm(len(indices), generator=generator)[:count].tolist()]


def load_sentiment_splits(profile: Profile, max_train: int, max_validation: int, max_test: int, seed: int = 0,
                          rotten_tomatoes_path: str | Path | None = None,
                          sst2_root: str | Path | None = None) -> SentimentSplits:
    """The profile's sentiment data in three capped splits: SST-2's train (train, validation) and dev (test),
    or the Rotten Tomatoes snippets split 60/20/20 by film, so that no film has snippets on two sides."""
    for name, cap in (("max_train", max_train), ("max_validation", max_validation), ("max_test", max_test)):
        check_int(name, cap, minimum=1)  # a cap of 0 would give an empty split, silently
    generator = make_generator(seed)
    requested = settings_for(SETTINGS, profile).dataset
    # The asset registry decides between the canonical SST-2 and its stand-in.
    if requested == "sst2" and (sst2_root is not None or resolve("sst2", profile).name == "sst2"):
        if sst2_root is None and not is_cached("sst2"):
            download_asset("sst2")  # reachable but not cached: download once into the cache
        texts, labels = load_sst2("train", sst2_root)
        test_texts, test_labels = load_sst2("validation", sst2_root)
        order = torch.randperm(len(texts), generator=generator).tolist()
        validation = order[:min(max_validation, len(texts) // 10)]
        train = _capped(order[len(validation):], max_train, generator)
        test = _capped(range(len(test_texts)), max_test, generator)
        description = (f"dataset: sst2 (GLUE), {len(train)} train and {len(validation)} validation sentences "
                       f"from its train split, {len(test)} of {len(test_texts)} dev sentences as the test set")
        dataset = "sst2"
    else:
        texts, labels, movies = load_rotten_tomatoes_snippets(rotten_tomatoes_path)
        parts = split_by_group(movies, (0.6, 0.2, 0.2), seed=seed)
        train, validation, test = (_capped(part, cap, generator)
                                   for part, cap in zip(parts, (max_train, max_validation, max_test)))
        films = [{movies[i] for i in part} for part in (train, validation, test)]
        shared = len(films[0] & films[1]) + len(films[0] & films[2]) + len(films[1] & films[2])
        description = (f"dataset: rotten-tomatoes-snippets, {len(texts)} snippets from {len(set(movies))} films "
                       f"split by film; train {len(train)} ({len(films[0])} films), validation {len(validation)} "
                       f"({len(films[1])} films), test {len(test)} ({len(films[2])} films); "
                       f"films on two sides: {shared}")
        test_texts, test_labels = texts, labels
        dataset = "rotten-tomatoes-snippets"
    validation, test = sorted(validation, key=lambda i: len(texts[i])), sorted(test, key=lambda i: len(test_texts[i]))
    return SentimentSplits(dataset, [texts[i] for i in train], [labels[i] for i in train],
                           [texts[i] for i in validation], [labels[i] for i in validation],
                           [test_texts[i] for i in test], [test_labels[i] for i in test], description)


def mistakes_table(texts: Sequence[str], logits: torch.Tensor, labels: torch.Tensor,
                   count: int = 5) -> list[dict[str, Any]]:
    """Rows ``{"text", "label", "predicted", "confidence"}`` of the ``count`` most confident mistakes."""
    if not (len(texts) == logits.shape[0] == labels.shape[0]):
        raise ValueError(f"lengths differ: {len(texts)} texts, {logits.shape[0]} logits, {labels.shape[0]} labels")
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    return [{"text": texts[i], "label": int(labels[i]), "predicted": int(predicted[i]),
             "confidence": float(confidence[i])} for i in most_confident_mistakes(logits, labels, count).tolist()]
