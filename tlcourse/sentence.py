"""From an encoder's token vectors to a sentence-level prediction, and what to compare it with.

* :func:`pool_tokens`: one vector per text (``[CLS]``, mean over real tokens, or BERT's pooler);
* :func:`sentence_features`: frozen vectors computed once, for linear probes on a cache;
* :func:`train_linear_probe`: a linear head trained on those vectors with the fine-tuning recipe;
* :class:`SentenceClassifier`: ``AutoModel`` plus a linear head, the hand-built classifier;
* :func:`tfidf_logistic_regression`: the classical baseline;
* :func:`mistakes_table`: the most confident wrong predictions, with their texts.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.text import validate_texts_and_labels

__all__ = [
    "POOLINGS",
    "pool_tokens",
    "sentence_features",
    "train_linear_probe",
    "SentenceClassifier",
    "tfidf_logistic_regression",
    "mistakes_table",
]


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
    was_training = encoder.training
    encoder.eval().to(device)  # no dropout: the features of a frozen encoder
    vectors: dict[str, list[torch.Tensor]] = {p: [] for p in poolings}
    targets = []
    for batch in loader:
        if "labels" not in batch:
            raise ValueError("sentence_features needs batches with 'labels'")
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        outputs = encoder(**inputs)
        for pooling in poolings:
            vectors[pooling].append(pool_tokens(outputs, inputs["attention_mask"], pooling).float().cpu())
        targets.append(batch["labels"])
    encoder.train(was_training)
    labels = torch.cat(targets)
    return {pooling: TensorDataset(torch.cat(rows), labels) for pooling, rows in vectors.items()}


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
    from tlcourse.data import make_loader
    from tlcourse.recipe import fine_tune

    return fine_tune(head, make_loader(train_set, batch_size, shuffle=True, seed=seed),
                     make_loader(test_set, 512, shuffle=False), learning_rate=learning_rate, num_epochs=num_epochs,
                     warmup_fraction=warmup_fraction, device=device, metrics=metrics)


class SentenceClassifier(nn.Module):
    """A pretrained encoder plus a linear head on the ``[CLS]`` vector or the mean of the tokens.

    Args:
        encoder: an ``AutoModel`` returning ``last_hidden_state`` of shape ``(batch, tokens, hidden)``.
        num_labels: classes.
        pooling: ``"cls"`` (first token), ``"mean"`` (average over real tokens, via the mask) or
            ``"pooler"`` (see :func:`pool_tokens`).
        dropout: dropout before the head.

    Raises:
        ValueError: unknown ``pooling`` or ``num_labels < 2``.

    Example:
        >>> # model = SentenceClassifier(encoder, num_labels=2, pooling="mean")
        >>> # logits = model(input_ids=ids, attention_mask=mask)  # (batch, 2)
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "cls", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, num_labels)`` for a padded batch."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        pooled = pool_tokens(outputs, attention_mask, self.pooling)  # (batch, hidden)
        return self.classifier(self.dropout(pooled))


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
    from tlcourse.metrics import most_confident_mistakes

    if not (len(texts) == logits.shape[0] == labels.shape[0]):
        raise ValueError(f"lengths differ: {len(texts)} texts, {logits.shape[0]} logits, {labels.shape[0]} labels")
    confidence, predicted = logits.float().softmax(dim=1).max(dim=1)
    return [{"text": texts[i], "label": int(labels[i]), "predicted": int(predicted[i]),
             "confidence": float(confidence[i])} for i in most_confident_mistakes(logits, labels, count).tolist()]
