"""From an encoder's token vectors to one vector per text: pooling, and cached sentence features."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from tlcourse.checks import check_int
from tlcourse.data import make_loader
from tlcourse.train import predict


POOLINGS = ("cls", "mean", "pooler")


def pool_tokens(outputs: Any, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per text from an encoder's outputs."""
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
    """Frozen sentence vectors and labels, for linear probes trained on cached features."""
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
    """:func:`sentence_features` over a tokenised dataset, shortest texts first; rows in its order."""
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
