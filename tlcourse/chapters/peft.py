"""The parameter-efficient fine-tuning chapter: its settings, its data, and the helpers it shares with its benchmark.

:func:`build_classifier` and :func:`train_steps` are also used by ``benchmarks/peft_learning_rates.py``,
which chose the learning rates. LoRA itself is written out in :mod:`tlcourse.lora`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from tlcourse.checks import check_instance, check_int
from tlcourse.data import load_rotten_tomatoes_snippets, split_by_group
from tlcourse.metrics import nearest_neighbour_accuracy
from tlcourse.models import SentenceClassifier, load_text_encoder
from tlcourse.optimization import adamw, linear_warmup_schedule, weight_decay_groups
from tlcourse.plotting import new_axes
from tlcourse.runtime import make_generator
from tlcourse.pooling import sentence_features
from tlcourse.train import fit

__all__ = ["PeftSettings", "SETTINGS", "FilmSplits", "load_film_splits", "METHODS", "LORA_TARGETS",
           "build_classifier", "train_steps", "encoder_retrieval_accuracy", "plot_forgetting_tradeoff"]


@dataclass(frozen=True)
class PeftSettings:
    """Sizes of the chapter's runs under one profile.

    ``learning_rates`` holds the peak rate per method family (``probe``, ``bitfit``, ``lora``,
    ``full``); ``lora_ranks``' largest is the rank every lesson is about; ``l2_sp_strength`` is the
    ``alpha`` of the penalty ``alpha / 2 * ||w - w0||^2``.
    """

    text_model: str
    max_train_examples: int
    max_validation_examples: int
    max_test_examples: int
    retrieval_films: int
    snippets_per_film: int
    batch_size: int
    num_steps: int
    max_length: int
    num_seeds: int
    lora_ranks: tuple[int, ...]
    lora_alpha: float
    learning_rates: Mapping[str, float]
    l2_sp_strength: float
    wise_alphas: tuple[float, ...]
    warmup_fraction: float

    def __post_init__(self) -> None:  # the same steps for all, in whole epochs for the cached-feature probe
        if self.num_steps % math.ceil(self.max_train_examples / self.batch_size):
            raise ValueError(f"num_steps={self.num_steps} must be whole epochs of "
                             f"{math.ceil(self.max_train_examples / self.batch_size)} steps "
                             f"({self.max_train_examples} examples in batches of {self.batch_size})")

    @property
    def num_epochs(self) -> int:
        """Passes over the training snippets that ``num_steps`` make."""
        return self.num_steps // math.ceil(self.max_train_examples / self.batch_size)


# Peak rates chosen on the validation films by benchmarks/peft_learning_rates.py (cpu sizes, seed 0,
# the best validation accuracy of each grid): the new head at the probe's rate in every method
_RATES = {"probe": 1e-1, "bitfit": 3e-3, "lora": 3e-3, "full": 2e-4}

SETTINGS: dict[str, PeftSettings] = {
    "smoke": PeftSettings(text_model="minilm-l6", max_train_examples=32, max_validation_examples=16,
                          max_test_examples=32, retrieval_films=4, snippets_per_film=4, batch_size=8, num_steps=4,
                          max_length=32, num_seeds=2, lora_ranks=(2, 8), lora_alpha=16.0, learning_rates=_RATES,
                          l2_sp_strength=1.0, wise_alphas=(0.0, 0.5, 1.0), warmup_fraction=0.1),
    # one pass over 768 snippets, 48 steps of 16, for each of 4 trained methods and 3 seeds, and WiSE-FT
    # at 3 points (each more is a pass over test and retrieval snippets per seed). One LoRA rank: a
    # second costs 40 s of a 5-minute budget on 2 cores and no lesson rests on it (smoke and gpu compare)
    "cpu": PeftSettings(text_model="minilm-l6", max_train_examples=768, max_validation_examples=240,
                        max_test_examples=400, retrieval_films=40, snippets_per_film=6, batch_size=16, num_steps=48,
                        max_length=48, num_seeds=3, lora_ranks=(8,), lora_alpha=16.0, learning_rates=_RATES,
                        l2_sp_strength=1.0, wise_alphas=(0.0, 0.5, 1.0), warmup_fraction=0.1),
    "gpu": PeftSettings(text_model="bert-base-uncased", max_train_examples=9600, max_validation_examples=1000,
                        max_test_examples=2000, retrieval_films=100, snippets_per_film=8, batch_size=32,
                        num_steps=600, max_length=64, num_seeds=3, lora_ranks=(2, 8, 32), lora_alpha=16.0,
                        learning_rates={"probe": 1e-2, "bitfit": 1e-3, "lora": 5e-4, "full": 2e-5},
                        l2_sp_strength=1.0, wise_alphas=(0.0, 0.25, 0.5, 0.75, 1.0), warmup_fraction=0.1),
}


@dataclass(frozen=True)
class FilmSplits:
    """Snippets split by film (validation and test shortest first), and a retrieval set of held-out films.

    ``retrieval_films`` and ``retrieval_labels`` give the film index and the sentiment of each
    retrieval snippet; ``description`` is one line for the chapter to print.
    """

    train_texts: list[str]
    train_labels: list[int]
    validation_texts: list[str]
    validation_labels: list[int]
    test_texts: list[str]
    test_labels: list[int]
    retrieval_texts: list[str]
    retrieval_films: list[int]
    retrieval_labels: list[int]
    description: str


def load_film_splits(config: PeftSettings, seed: int = 0, path: str | Path | None = None) -> FilmSplits:
    """Rotten Tomatoes snippets split 70/10/20 by film, plus a same-film retrieval set of test films.

    The retrieval set takes ``config.snippets_per_film`` snippets, half fresh and half rotten, from
    each of ``config.retrieval_films`` test films. ``path`` reads another ``.csv.bz2`` file.
    """
    check_instance("config", config, PeftSettings)
    texts, labels, movies = load_rotten_tomatoes_snippets(path)
    train, validation, test = split_by_group(movies, (0.7, 0.1, 0.2), seed=seed)
    generator = make_generator(seed)

    def subset(indices: list[int], count: int) -> list[int]:
        return [indices[i] for i in torch.randperm(len(indices), generator=generator)[:count].tolist()]

    by_film: dict[tuple[str, int], list[int]] = {}
    for index in test:
        by_film.setdefault((movies[index], labels[index]), []).append(index)
    per_label = config.snippets_per_film // 2
    candidates = sorted({film for film, _ in by_film}
                        if per_label == 0 else {film for film, _ in by_film
                                                if min(len(by_film.get((film, 0), [])),
                                                       len(by_film.get((film, 1), []))) >= per_label})
    if len(candidates) < config.retrieval_films:
        raise ValueError(f"only {len(candidates)} test films have {per_label} fresh and {per_label} rotten "
                         f"snippets; retrieval_films={config.retrieval_films} asks for more")
    chosen = subset(candidates, config.retrieval_films)  # type: ignore[arg-type]
    retrieval = [(film_index, member) for film_index, film in enumerate(chosen) for label in (0, 1)
                 for member in subset(by_film[(film, label)], per_label)]
    train = subset(train, config.max_train_examples)
    validation = sorted(subset(validation, config.max_validation_examples), key=lambda i: len(texts[i]))  # less padding
    test = sorted(subset(test, config.max_test_examples), key=lambda i: len(texts[i]))
    retrieval.sort(key=lambda pair: len(texts[pair[1]]))
    description = (f"{len(texts)} snippets of {len(set(movies))} films split by film; train {len(train)}, "
                   f"validation {len(validation)}, test {len(test)} snippets; retrieval set "
                   f"{len(retrieval)} snippets of {len(chosen)} test films")
    return FilmSplits([texts[i] for i in train], [labels[i] for i in train],
                      [texts[i] for i in validation], [labels[i] for i in validation],
                      [texts[i] for i in test], [labels[i] for i in test],
                      [texts[i] for _, i in retrieval], [film for film, _ in retrieval],
                      [labels[i] for _, i in retrieval], description)


METHODS = ("linear probe", "BitFit", "LoRA", "full fine-tuning")

# LoRA's paper adapts the attention's query and value projections; BERT-like models name them so
LORA_TARGETS = ("query", "value")


def build_classifier(source: str, method: str, lora_rank: int = 8, lora_alpha: float = 16.0,
                     encoder: nn.Module | None = None) -> tuple[Any, nn.Module]:
    """``(tokenizer, model)``: a mean-pooled sentence classifier that trains what ``method`` trains.

    ``method`` is one of :data:`METHODS`; for ``"LoRA"`` the model is a ``peft.PeftModel``. Only a
    linear probe may share an already loaded ``encoder`` (no tokenizer is returned then).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if encoder is not None and method != "linear probe":
        raise ValueError(f"only a linear probe may share a loaded encoder; {method!r} trains it")
    tokenizer = None
    if encoder is None:
        tokenizer, encoder = load_text_encoder(source)
    model: nn.Module = SentenceClassifier(encoder, num_labels=2, pooling="mean")
    if getattr(encoder, "pooler", None) is not None:
        # mean pooling never calls BERT's pooler: frozen, so that it is not counted as trained
        encoder.pooler.requires_grad_(False)
    if method == "linear probe":
        model.encoder.requires_grad_(False)
    elif method == "BitFit":
        for name, parameter in model.named_parameters():
            parameter.requires_grad_((name.endswith(".bias") and ".pooler." not in name) or name.startswith("classifier."))
    elif method == "LoRA":
        from peft import LoraConfig, get_peft_model

        lora_config = LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                                 target_modules=list(LORA_TARGETS), modules_to_save=["classifier"])
        model = get_peft_model(model, lora_config)
    return tokenizer, model


def train_steps(model: nn.Module, loader: Any, *, num_steps: int, learning_rate: float,
                head_learning_rate: float | None = None, head_name: str = "classifier", warmup_fraction: float = 0.1,
                weight_decay: float = 0.01, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                device: torch.device | str = "cpu") -> tuple[Any, int]:
    """The BERT chapter's recipe for exactly ``num_steps`` steps; returns ``fit``'s history and the steps taken.

    AdamW without decay on biases and LayerNorm, the head (a parameter with ``head_name`` in its
    name) at ``head_learning_rate``, linear warmup then decay, clipping at norm 1.
    """
    check_int("num_steps", num_steps)
    if num_steps > len(loader) and num_steps % len(loader):
        raise ValueError(f"num_steps={num_steps} must be at most one epoch or whole epochs of {len(loader)} steps")
    num_epochs = math.ceil(num_steps / len(loader))
    per_epoch = min(num_steps, len(loader))
    groups = []
    for group in weight_decay_groups(model, weight_decay, learning_rate):  # no decay on biases, LayerNorm
        for is_head in (False, True):
            members = [p for name, p in zip(group["names"], group["params"])
                       if (head_name in name.split(".")) == is_head]
            rate = head_learning_rate if is_head and head_learning_rate is not None else learning_rate
            if members:
                groups.append({"params": members, "weight_decay": group["weight_decay"], "lr": rate})
    if not groups:
        raise ValueError("the model has no trainable parameter: nothing to train")
    optimizer = adamw(groups, device)  # fused where PyTorch has the kernel: the same update up to rounding
    total = per_epoch * num_epochs
    scheduler = linear_warmup_schedule(optimizer, int(warmup_fraction * total), total)
    steps: list[int] = []
    history = fit(model, loader, optimizer, num_epochs=num_epochs, loss_fn=loss_fn, scheduler=scheduler,
                  device=device, max_grad_norm=1.0, max_steps_per_epoch=per_epoch,
                  on_step=lambda epoch, step, loss: steps.append(step))
    return history, len(steps)


def encoder_retrieval_accuracy(encoder: nn.Module, loader: Any, films: Sequence[int], labels: Sequence[int],
                               device: torch.device | str = "cpu") -> float:
    """The source task: same-film nearest-neighbour accuracy of ``encoder``'s mean-pooled vectors, within each label."""
    vectors = sentence_features(encoder, loader, ["mean"], device=device)["mean"].tensors[0]  # (N, hidden)
    return nearest_neighbour_accuracy(vectors, films, within=labels)


def plot_forgetting_tradeoff(points: Sequence[Mapping[str, Any]], pretrained_source: float,
                             ax: Axes | None = None) -> Figure:
    """Target against source accuracy: one marker per run, WiSE-FT points (with ``alpha``) as a path."""
    if not points:
        raise ValueError("points is empty: nothing to plot")
    figure, ax = new_axes(ax, (6.4, 4.4))
    methods = list(dict.fromkeys(str(point["method"]) for point in points))
    for index, method in enumerate(methods):
        rows = [point for point in points if point["method"] == method]
        color = f"C{index}"
        if "alpha" in rows[0]:
            by_alpha: dict[float, list[Mapping[str, Any]]] = {}
            for row in rows:
                by_alpha.setdefault(float(row["alpha"]), []).append(row)
            alphas = sorted(by_alpha)
            source = [sum(r["source"] for r in by_alpha[a]) / len(by_alpha[a]) for a in alphas]
            target = [sum(r["target"] for r in by_alpha[a]) / len(by_alpha[a]) for a in alphas]
            ax.plot(source, target, "-o", color=color, label=f"{method} (mean over seeds)", markersize=4)
            for alpha, x, y in zip(alphas, source, target):
                ax.annotate(f"α={alpha:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        else:
            ax.scatter([r["source"] for r in rows], [r["target"] for r in rows], color=color, label=method, s=22)
    ax.axvline(pretrained_source, color="grey", linestyle="--", linewidth=1, label="pretrained encoder")
    ax.set_xlabel("source task: same-film retrieval accuracy")
    ax.set_ylabel("target task: sentiment test accuracy")
    ax.legend(fontsize=7)
    return figure
