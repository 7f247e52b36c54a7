"""Tests for tlcourse.pooling: sentence vectors against each text encoded alone, pooling by hand."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tlcourse.data import make_loader
from tlcourse.models import load_text_encoder
from tlcourse.pooling import dataset_features, pool_tokens, sentence_features
from tlcourse.text import PaddingCollator, TextClassificationDataset


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
    with pytest.raises(ValueError, match="needs a 'labels' entry"):
        sentence_features(encoder, [{"input_ids": torch.ones(1, 2, dtype=torch.long),
                                     "attention_mask": torch.ones(1, 2, dtype=torch.long)}], poolings=["cls"])


def test_dataset_features_equal_a_pass_in_order_and_keep_the_order(tiny_folder):
    tokenizer, encoder = load_text_encoder(tiny_folder)
    texts = ["the film was very very dull and long", "good", "bad film", "a fine, fine film", "no"]
    data = TextClassificationDataset(texts, [0, 1, 0, 1, 0], tokenizer, max_length=16)
    collator = PaddingCollator(tokenizer.pad_token_id)
    reference = sentence_features(encoder, make_loader(data, batch_size=2, shuffle=False, collate_fn=collator),
                                  poolings=["cls", "mean"])
    sorted_pass = dataset_features(encoder, data, ["cls", "mean"], batch_size=2, collate_fn=collator)
    for pooling in ("cls", "mean"):
        torch.testing.assert_close(sorted_pass[pooling].tensors[0], reference[pooling].tensors[0],
                                   atol=1e-5, rtol=1e-4)
        assert sorted_pass[pooling].tensors[1].tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(TypeError, match="lengths"):
        dataset_features(encoder, list(data), ["cls"], batch_size=2, collate_fn=collator)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        dataset_features(encoder, data, ["cls"], batch_size=0, collate_fn=collator)


def test_pool_tokens_by_hand():
    hidden = torch.arange(12, dtype=torch.float32).view(2, 3, 2)  # (batch 2, 3 tokens, hidden 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    outputs = SimpleNamespace(last_hidden_state=hidden, pooler_output=None)
    torch.testing.assert_close(pool_tokens(outputs, mask, "cls"), torch.tensor([[0.0, 1.0], [6.0, 7.0]]))
    torch.testing.assert_close(pool_tokens(outputs, mask, "mean"), torch.tensor([[1.0, 2.0], [8.0, 9.0]]))
    with pytest.raises(ValueError, match="needs an encoder with a pooler"):
        pool_tokens(outputs, mask, "pooler")
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_tokens(outputs, mask, "max")
