"""From an encoder's token vectors to one vector per text: pooling, and cached sentence features.

``pool_tokens`` reads the ``[CLS]`` vector, the mean over real tokens, or BERT's pooler from an
encoder's outputs; ``sentence_features`` runs a frozen encoder once over a loader and keeps every
pooling asked for, so that linear probes train on the cache; ``dataset_features`` does so over a
tokenised dataset, shortest texts first (less padding), with its rows back in the dataset's order.
Tokens and padded batches are in :mod:`tlcourse.text`; the classifier that pools inside its forward
pass is :class:`tlcourse.models.SentenceClassifier`.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from tlcourse.checks import check_int
from tlcourse.data import make_loader
from tlcourse.train import predict

__all__ = ["POOLINGS", "dataset_features", "pool_tokens", "sentence_features"]

POOLINGS = ("cls", "mean", "pooler")


def pool_tokens(outputs: Any, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text from an encoder's outputs.

    Args:
        outputs: what a BERT-like ``AutoModel`` returns (``last_hidden_state`` of shape
            ``(batch, tokens, hidden)`` and, for ``"pooler"``, ``pooler_output``).
        attention_mask: ``(batch, tokens)``, 1 for real tokens and 0 for padding.
        pooling: ``"cls"`` (the first token's vector), ``"mean"`` (average over the real tokens)
            or ``"pooler"`` (BERT's pooler: the ``[CLS]`` vector through a dense layer and tanh,
            what ``AutoModelForSequenceClassification`` puts its head on).

    Returns:
        ``(batch, hidden)``.

    Raises:
        ValueError: unknown ``pooling``, or ``"pooler"`` for an encoder without a pooler.

    Example:
        >>> from types import SimpleNamespace
        >>> hidden = torch.tensor([[[1.0], [3.0], [100.0]]])  # (1, 3 tokens, 1); the last is padding
        >>> pool_tokens(SimpleNamespace(last_hidden_state=hidden), torch.tensor([[1, 1, 0]]), "mean")
        tensor([[2.]])
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if pooling == "pooler":
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ValueError("pooling='pooler' needs an encoder with a pooler (pooler_output is None)")
        return pooled
    hidden = outputs.last_hidden_state
    if pooling == "cls":
        return hidden[:, 0]  # (batch, hidden): the [CLS] position
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (batch, tokens, 1); padding gets 0
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@torch.inference_mode()
def sentence_features(encoder: nn.Module, loader: Any, poolings: Sequence[str] = ("cls", "mean"),
                      device: torch.device | str = "cpu") -> dict[str, TensorDataset]:
    """Frozen sentence vectors and labels, for linear probes trained on cached features.

    A probe on a frozen encoder sees the same features every epoch, so computing them once and
    training the head on the cache gives the same result as running the encoder every step, at a
    fraction of the cost; the head can then be trained to convergence. One forward pass serves
    every pooling asked for.

    Args:
        encoder: a BERT-like ``AutoModel`` (for a classifier, its ``base_model``).
        loader: padded dict batches with ``"labels"``.
        poolings: any of ``"cls"``, ``"mean"``, ``"pooler"`` (see :func:`pool_tokens`).
        device: where the encoder runs.

    Returns:
        ``{pooling: TensorDataset(features (N, hidden) float32 on the CPU, labels (N,))}``, rows in
        loader order.

    Raises:
        ValueError: no or unknown pooling; batches without ``"labels"``.

    Example:
        >>> # features = sentence_features(model.base_model, loader, poolings=["pooler", "mean"])
        >>> # head_loader = make_loader(features["mean"], 32, shuffle=True)
    """
    poolings = list(poolings)
    if not poolings or any(p not in POOLINGS for p in poolings):
        raise ValueError(f"poolings must be a non-empty list from {POOLINGS}, got {poolings!r}")

    def pooled(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = model(**inputs)
        # one (B, H) vector per pooling, side by side: (B, len(poolings) * H)
        return torch.cat([pool_tokens(outputs, inputs["attention_mask"], p).float() for p in poolings], dim=1)

    # eval mode inside predict: no dropout, the features of a frozen encoder
    vectors, labels = predict(encoder, loader, device, forward=pooled)
    chunks = vectors.chunk(len(poolings), dim=1)
    return {pooling: TensorDataset(chunk.contiguous(), labels) for pooling, chunk in zip(poolings, chunks)}


def dataset_features(encoder: nn.Module, dataset: Any, poolings: Sequence[str], *, batch_size: int,
                     collate_fn: Any, device: torch.device | str = "cpu") -> dict[str, TensorDataset]:
    """:func:`sentence_features` over a tokenised dataset, shortest texts first; rows in its order.

    A batch is padded to its longest text, so batches of texts of similar length waste less
    compute on padding (on a shuffled training split, about half of a forward pass). The attention
    mask keeps padding out of every vector, so the result equals a pass in the dataset's order up
    to float rounding; the rows are put back in that order, so they line up with the texts.

    Args:
        encoder: as for :func:`sentence_features`.
        dataset: items with ``"input_ids"`` and ``"labels"`` and a ``lengths()`` method (token count
            per item), e.g. :class:`tlcourse.text.TextClassificationDataset`.
        poolings, device: as for :func:`sentence_features`.
        batch_size: texts per forward pass.
        collate_fn: pads a list of items (e.g. :class:`tlcourse.text.PaddingCollator`).

    Returns:
        ``{pooling: TensorDataset(features (N, hidden), labels (N,))}``, row ``i`` for ``dataset[i]``.

    Raises:
        TypeError: a dataset without ``lengths()``.
        ValueError: ``batch_size`` not a positive int, or what :func:`sentence_features` refuses.

    Example:
        >>> # features = dataset_features(encoder, train_data, ["mean"], batch_size=32,
        >>> #                             collate_fn=PaddingCollator(tokenizer.pad_token_id))
    """
    check_int("batch_size", batch_size)
    if not callable(getattr(dataset, "lengths", None)):
        raise TypeError(f"dataset must have a lengths() method (token count per item), got {type(dataset).__name__}")
    lengths = dataset.lengths()
    order = sorted(range(len(lengths)), key=lengths.__getitem__)  # shortest first
    loader = make_loader(Subset(dataset, order), batch_size, shuffle=False, collate_fn=collate_fn)
    features = sentence_features(encoder, loader, poolings, device=device)
    back = torch.argsort(torch.tensor(order))  # (N,): where each dataset row sits in the sorted pass
    return {pooling: TensorDataset(*(tensor[back] for tensor in dataset_pooled.tensors))
            for pooling, dataset_pooled in features.items()}
