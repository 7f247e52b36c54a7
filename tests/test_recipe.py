"""Tests for tlcourse.recipe on the tiny BERT of conftest.py (no network)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tlcourse.data import make_loader
from tlcourse.models import load_text_classifier
from tlcourse.recipe import fine_tune, layerwise_lr_groups, linear_warmup_schedule, weight_decay_groups
from tlcourse.runtime import seed_everything
from tlcourse.text import PaddingCollator, TextClassificationDataset


def test_weight_decay_grouping_is_exactly_bias_and_layernorm(tiny):
    _, model = tiny
    decay, no_decay = weight_decay_groups(model, 0.01, learning_rate=1e-4)
    names = [n for n, _ in model.named_parameters()]
    expected = {n for n in names if n.endswith(".bias") or "LayerNorm" in n}
    assert set(no_decay["names"]) == expected
    assert set(decay["names"]) == set(names) - expected
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in (decay, no_decay)])


def test_schedule_matches_transformers():
    from transformers import get_linear_schedule_with_warmup

    def run(make):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = make(optimizer)
        values = []
        for _ in range(11):
            values.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return values

    ours = run(lambda o: linear_warmup_schedule(o, warmup_steps=3, total_steps=10))
    theirs = run(lambda o: get_linear_schedule_with_warmup(o, 3, 10))
    assert ours == pytest.approx(theirs)
    assert ours[0] == 0.0 and ours[3] == pytest.approx(0.1) and ours[10] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        linear_warmup_schedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 11, 10)


def test_layerwise_groups(tiny):
    _, model = tiny
    groups = layerwise_lr_groups(model, 1e-3, decay=0.5, weight_decay=0.01)
    lr_of = {name: g["lr"] for g in groups for name in g["names"]}
    assert lr_of["classifier.weight"] == pytest.approx(1e-3)
    assert lr_of["bert.encoder.layer.1.attention.self.query.weight"] == pytest.approx(0.5e-3)
    assert lr_of["bert.encoder.layer.0.output.dense.weight"] == pytest.approx(0.25e-3)
    assert lr_of["bert.embeddings.word_embeddings.weight"] == pytest.approx(0.125e-3)
    assert sum(len(g["names"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_groups(model, 1e-3, decay=0.0)
    with pytest.raises(ValueError, match="BERT-like"):
        layerwise_lr_groups(nn.Linear(2, 2), 1e-3, decay=0.9)


def test_fine_tune_runs_and_probe_trains_only_head(tiny_folder, make_examples):
    from tlcourse.transfer import freeze

    seed_everything(0)
    tokenizer, model = load_text_classifier(tiny_folder, 2)
    freeze(model, "bert")
    before = model.bert.embeddings.word_embeddings.weight.detach().clone()
    texts, labels = make_examples(8)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, batch_size=4, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    history = fine_tune(model, loader, loader, learning_rate=1e-2, num_epochs=2, max_steps_per_epoch=1)
    assert len(history) == 2
    assert torch.equal(before, model.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="warmup_fraction"):
        fine_tune(model, loader, loader, learning_rate=1e-2, num_epochs=1, warmup_fraction=2.0)


def test_fine_tune_layerwise_decay(tiny_folder, make_examples):
    texts, labels = make_examples(8)

    def embedding_change(decay):
        seed_everything(0)
        tokenizer, model = load_text_classifier(tiny_folder, 2)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
        loader = make_loader(data, batch_size=4, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
        fine_tune(model, loader, loader, learning_rate=1e-2, num_epochs=1, warmup_fraction=0.0,
                  layerwise_decay=decay)
        after = dict(model.named_parameters())
        return {n: (after[n] - before[n]).abs().max().item() for n in before}, model

    plain, plain_model = embedding_change(None)
    one, one_model = embedding_change(1.0)
    # decay 1 is the plain recipe: same rate everywhere, same no-decay group
    for a, b in zip(plain_model.parameters(), one_model.parameters()):
        torch.testing.assert_close(a, b)
    decayed, _ = embedding_change(0.1)
    name = "bert.embeddings.word_embeddings.weight"
    # two layers below the head plus the embeddings: the embedding rate is 1e-2 * 0.1**3;
    # Adam's step is about the rate, so the change shrinks by orders of magnitude
    assert decayed[name] < plain[name] / 20
    head = "classifier.weight"
    assert decayed[head] == pytest.approx(plain[head], rel=0.1)  # the head keeps the full rate
