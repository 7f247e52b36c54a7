"""Tests for tlcourse.sentence on the tiny BERT of conftest.py (no network)."""
from __future__ import annotations

import pytest
import torch

from tlcourse.data import make_loader
from tlcourse.models import load_text_encoder
from tlcourse.sentence import (SentenceClassifier, mistakes_table, pool_tokens, sentence_features,
                               tfidf_logistic_regression, train_linear_probe)
from tlcourse.text import PaddingCollator, TextClassificationDataset


def test_sentence_classifier_mean_pooling_ignores_padding(tiny_folder):
    tokenizer, encoder = load_text_encoder(tiny_folder)
    model = SentenceClassifier(encoder, 2, pooling="mean").eval()
    single = tokenizer(["good film"], return_tensors="pt")
    padded = tokenizer(["good film", "the film was very very dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        alone = model(**single)
        together = model(**padded)
    assert together.shape == (2, 2)
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="pooling"):
        SentenceClassifier(encoder, 2, pooling="max")


def test_small_helpers():
    probabilities = tfidf_logistic_regression(["good film", "great film", "bad film", "awful film"] * 3,
                                              [1, 1, 0, 0] * 3, ["good", "awful"])
    assert probabilities.argmax(1).tolist() == [1, 0]
    rows = mistakes_table(["a", "b", "c"], torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 5.0]]),
                          torch.tensor([1, 1, 0]))
    assert [r["text"] for r in rows] == ["c", "a"]
    assert rows[0]["predicted"] == 1 and rows[0]["label"] == 0
    assert rows[0]["confidence"] == pytest.approx(torch.tensor([0.0, 5.0]).softmax(0)[1].item())
    with pytest.raises(ValueError, match="lengths differ: 2 texts, 3 logits"):
        mistakes_table(["a", "b"], torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))


def test_sentence_features_match_the_encoder_and_ignore_padding(tiny_folder):
    tokenizer, encoder = load_text_encoder(tiny_folder)
    texts, labels = ["good film", "the film was very very dull", "bad"], [1, 0, 0]
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, batch_size=3, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    encoder.train()
    features = sentence_features(encoder, loader, poolings=["cls", "mean", "pooler"])
    assert encoder.training  # the mode is restored
    encoder.eval()
    for index, text in enumerate(texts):  # each text alone, unpadded: the independent reference
        with torch.no_grad():
            alone = encoder(**tokenizer([text], return_tensors="pt"))
        torch.testing.assert_close(features["cls"].tensors[0][index], alone.last_hidden_state[0, 0])
        torch.testing.assert_close(features["mean"].tensors[0][index], alone.last_hidden_state[0].mean(0),
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(features["pooler"].tensors[0][index], alone.pooler_output[0],
                                   atol=1e-5, rtol=1e-4)
    assert features["mean"].tensors[1].tolist() == labels
    with pytest.raises(ValueError, match="poolings must be a non-empty list"):
        sentence_features(encoder, loader, poolings=["max"])
    with pytest.raises(ValueError, match="needs batches with 'labels'"):
        sentence_features(encoder, [{"input_ids": torch.ones(1, 2, dtype=torch.long),
                                     "attention_mask": torch.ones(1, 2, dtype=torch.long)}], poolings=["cls"])


def test_pool_tokens_by_hand():
    from types import SimpleNamespace

    hidden = torch.arange(12, dtype=torch.float32).view(2, 3, 2)  # (batch 2, 3 tokens, hidden 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    outputs = SimpleNamespace(last_hidden_state=hidden, pooler_output=None)
    torch.testing.assert_close(pool_tokens(outputs, mask, "cls"), torch.tensor([[0.0, 1.0], [6.0, 7.0]]))
    torch.testing.assert_close(pool_tokens(outputs, mask, "mean"), torch.tensor([[1.0, 2.0], [8.0, 9.0]]))
    with pytest.raises(ValueError, match="needs an encoder with a pooler"):
        pool_tokens(outputs, mask, "pooler")
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_tokens(outputs, mask, "max")


def test_train_linear_probe_fits_separable_features_in_place():
    from torch import nn
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 6, generator=generator)
    labels = (features[:, 0] - features[:, 3] > 0).long()  # linearly separable
    torch.manual_seed(0)
    head = nn.Linear(6, 2)
    before = head.weight.detach().clone()
    history = train_linear_probe(head, TensorDataset(features, labels), TensorDataset(features, labels),
                                 learning_rate=5e-2, num_epochs=40, batch_size=16)
    assert len(history) == 40 and not torch.equal(head.weight, before)  # the head itself was trained
    assert history.last["val_accuracy"] >= 0.95
    with torch.no_grad():
        assert (head(features).argmax(1) == labels).float().mean() == history.last["val_accuracy"]
