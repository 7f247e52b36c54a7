"""The PEFT chapter's helpers: settings, film splits, retrieval, memory accounting, training budget."""

import bz2
import copy
import csv
import dataclasses
import io
import math

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from tlcourse.chapters.peft import (SETTINGS, PeftSettings, build_classifier, encoder_retrieval_accuracy,
                                    load_film_splits, plot_forgetting_tradeoff, train_steps)
from tlcourse.data import make_loader
from tlcourse.metrics import nearest_neighbour_accuracy
from tlcourse.profiles import get_profile, settings_for
from tlcourse.pooling import sentence_features
from tlcourse.text import PaddingCollator, TextClassificationDataset, length_grouped_loader


def test_every_profile_has_settings_and_whole_epochs():
    for name in ("smoke", "cpu", "gpu"):
        row = settings_for(SETTINGS, get_profile(name))
        assert row.num_seeds >= 2 and row.num_epochs >= 1
        assert row.num_steps == row.num_epochs * math.ceil(row.max_train_examples / row.batch_size)
    assert settings_for(SETTINGS, get_profile("cpu")).num_seeds >= 3


def test_settings_refuse_partial_epochs_and_unknown_profiles():
    with pytest.raises(ValueError, match="must be whole epochs"):
        dataclasses.replace(SETTINGS["smoke"], num_steps=5)
    with pytest.raises(ValueError, match="no entry for profile 'nope'"):
        settings_for(SETTINGS, dataclasses.replace(get_profile("smoke"), name="nope"))


def _write_snippets(path, num_films: int, fresh: int, rotten: int) -> None:
    rows = [{"category": "plot", "text": "a plot summary", "movie_name": "film00", "has_plot_and_reviews": "True"}]
    for film in range(num_films):
        for index in range(fresh + rotten):
            category = "fresh" if index < fresh else "rotten"
            rows.append({"category": category, "text": f"film{film:02d} snippet {index} {category}",
                         "movie_name": f"film{film:02d}", "has_plot_and_reviews": "True"})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(bz2.compress(buffer.getvalue().encode()))


def test_film_splits_keep_films_apart_and_balance_the_retrieval_set(tmp_path):
    path = tmp_path / "snippets.csv.bz2"
    _write_snippets(path, num_films=30, fresh=3, rotten=3)
    config = dataclasses.replace(SETTINGS["smoke"], max_train_examples=40, batch_size=8, num_steps=5,
                                 max_validation_examples=10, max_test_examples=20, retrieval_films=3,
                                 snippets_per_film=4)
    splits = load_film_splits(config, seed=0, path=path)
    film = lambda text: text.split()[0]  # noqa: E731
    sides = [{film(t) for t in texts} for texts in (splits.train_texts, splits.validation_texts, splits.test_texts)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len(splits.train_texts) == 40 and len(splits.test_texts) == 20
    assert "a plot summary" not in splits.train_texts + splits.test_texts  # plots are not snippets
    assert len(splits.retrieval_texts) == 12 and sorted(set(splits.retrieval_films)) == [0, 1, 2]
    for index in range(3):
        members = [i for i, f in enumerate(splits.retrieval_films) if f == index]
        assert len({film(splits.retrieval_texts[i]) for i in members}) == 1  # one film per index
        assert sorted(splits.retrieval_labels[i] for i in members) == [0, 0, 1, 1]
        assert all(film(splits.retrieval_texts[i]) in sides[2] for i in members)  # held-out films
    assert splits.train_labels == [1 if t.endswith("fresh") else 0 for t in splits.train_texts]


def test_film_splits_refuse_too_few_balanced_films(tmp_path):
    path = tmp_path / "snippets.csv.bz2"
    _write_snippets(path, num_films=30, fresh=4, rotten=1)
    with pytest.raises(ValueError, match="test films have 2 fresh and 2 rotten"):
        load_film_splits(dataclasses.replace(SETTINGS["smoke"], retrieval_films=3, snippets_per_film=4), path=path)


def test_build_classifier_trains_what_each_method_says(tiny_folder):
    def trainable(model):
        return [name for name, p in model.named_parameters() if p.requires_grad]

    _, probe = build_classifier(tiny_folder, "linear probe")
    assert trainable(probe) == ["classifier.weight", "classifier.bias"]
    _, bitfit = build_classifier(tiny_folder, "BitFit")
    assert all(name.endswith("bias") or name.startswith("classifier.") for name in trainable(bitfit))
    assert any(name.startswith("encoder.") for name in trainable(bitfit))
    _, lora = build_classifier(tiny_folder, "LoRA", lora_rank=2)
    names = trainable(lora)
    assert all("lora_" in name or "classifier" in name for name in names)
    assert sum("lora_A" in name for name in names) == 2 * 2  # query and value in two layers
    _, full = build_classifier(tiny_folder, "full fine-tuning")
    assert trainable(full) == [n for n, _ in full.named_parameters() if ".pooler." not in n]  # unused by mean pooling
    with pytest.raises(ValueError, match="method must be one of"):
        build_classifier(tiny_folder, "adapters")


def test_train_steps_takes_exactly_the_steps_and_moves_only_trainable_weights(tiny_folder, make_examples):
    tokenizer, model = build_classifier(tiny_folder, "BitFit")
    texts, labels = make_examples(24)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)

    def loader():
        return length_grouped_loader(data, 8, seed=0, collate_fn=PaddingCollator(tokenizer.pad_token_id))

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history, steps = train_steps(model, loader(), num_steps=6, learning_rate=1e-2, head_learning_rate=1e-1)
    assert steps == 6 and len(history) == 2  # two epochs of three batches
    for name, parameter in model.named_parameters():
        changed = not torch.equal(before[name], parameter.detach())
        assert changed == parameter.requires_grad, name
    assert train_steps(model, loader(), num_steps=2, learning_rate=1e-2)[1] == 2
    with pytest.raises(ValueError, match="at most one epoch or whole epochs of 3 steps"):
        train_steps(model, loader(), num_steps=4, learning_rate=1e-2)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        train_steps(model, loader(), num_steps=0, learning_rate=1e-2)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        train_steps(model, loader(), num_steps=1, learning_rate=1e-2)


def test_train_steps_gives_the_head_its_own_rate():
    # one step of AdamW moves every weight by about its group's learning rate (the first step is
    # lr * sign(gradient) up to eps), so the head's change shows which rate it got
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("body", nn.Linear(3, 3))
    model.add_module("classifier", nn.Linear(3, 2))
    data = torch.utils.data.TensorDataset(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_steps(model, torch.utils.data.DataLoader(data, batch_size=4), num_steps=1, learning_rate=1e-3,
                head_learning_rate=1e-1, warmup_fraction=0.0, weight_decay=0.0)
    # the schedule decays linearly to 0 at the last step, but it is stepped after the update
    body_change = (model.body.weight - before["body.weight"]).abs().max().item()
    head_change = (model.classifier.weight - before["classifier.weight"]).abs().max().item()
    assert body_change == pytest.approx(1e-3, rel=1e-3) and head_change == pytest.approx(1e-1, rel=1e-3)


def test_train_steps_matches_a_hand_written_adamw_loop():
    # reference: torch's unfused AdamW, groups, schedule and clipping written out by hand; train_steps
    # uses the fused AdamW, which must give the same weights up to rounding
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("body", nn.Linear(5, 4))
    model.add_module("classifier", nn.Linear(4, 3))
    reference, initial = copy.deepcopy(model), copy.deepcopy(model)
    data = torch.utils.data.TensorDataset(torch.randn(16, 5) * 3, torch.randint(0, 3, (16,)))
    _, steps = train_steps(model, torch.utils.data.DataLoader(data, batch_size=4), num_steps=4, learning_rate=1e-2,
                           head_learning_rate=1e-1, warmup_fraction=0.25, weight_decay=0.1)
    body, head = reference.body, reference.classifier
    optimizer = torch.optim.AdamW([{"params": [body.weight], "lr": 1e-2, "weight_decay": 0.1},
                                   {"params": [head.weight], "lr": 1e-1, "weight_decay": 0.1},
                                   {"params": [body.bias], "lr": 1e-2, "weight_decay": 0.0},
                                   {"params": [head.bias], "lr": 1e-1, "weight_decay": 0.0}], foreach=False)
    factors = [0.0, 1.0, 2 / 3, 1 / 3]  # one warmup step of four, then linear decay to 0
    for factor, (inputs, targets) in zip(factors, torch.utils.data.DataLoader(data, batch_size=4)):
        for group, peak in zip(optimizer.param_groups, (1e-2, 1e-1, 1e-2, 1e-1)):
            group["lr"] = peak * factor
        optimizer.zero_grad()
        nn.functional.cross_entropy(reference(inputs), targets).backward()
        nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        optimizer.step()
    assert steps == 4
    for (name, ours), theirs in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(ours, theirs, atol=1e-6), name
    assert (model.body.weight - initial.body.weight).abs().min() > 1e-3  # every weight moved: the match means something


def test_encoder_retrieval_accuracy_uses_mean_pooled_vectors_within_labels(tiny_folder, make_examples):
    tokenizer, model = build_classifier(tiny_folder, "linear probe")
    texts, labels = make_examples(12)
    loader = make_loader(TextClassificationDataset(texts, labels, tokenizer, 16), 4, shuffle=False,
                         collate_fn=PaddingCollator(tokenizer.pad_token_id))
    films = [i // 4 for i in range(12)]
    vectors = sentence_features(model.encoder, loader, ["mean"])["mean"].tensors[0]
    assert encoder_retrieval_accuracy(model.encoder, loader, films, labels) == nearest_neighbour_accuracy(
        vectors, films, within=labels)


def test_plot_forgetting_tradeoff_draws_seed_means_per_alpha_and_every_single_run():
    points = [{"method": "full", "source": 0.1, "target": 0.8}, {"method": "full", "source": 0.2, "target": 0.9},
              {"method": "WiSE-FT", "alpha": 1.0, "source": 0.1, "target": 0.8},  # alphas out of order, 2 seeds
              {"method": "WiSE-FT", "alpha": 0.0, "source": 0.3, "target": 0.7},
              {"method": "WiSE-FT", "alpha": 0.0, "source": 0.5, "target": 0.5},
              {"method": "WiSE-FT", "alpha": 1.0, "source": 0.3, "target": 0.6}]
    figure, ax = plt.subplots()
    assert plot_forgetting_tradeoff(points, 0.3, ax=ax) is figure
    assert ax.get_xlabel().startswith("source task")
    path, pretrained = ax.lines  # the WiSE-FT path (means by hand below) and the pretrained encoder's line
    assert list(path.get_xdata()) == pytest.approx([0.4, 0.2]) and list(path.get_ydata()) == pytest.approx([0.6, 0.7])
    assert list(pretrained.get_xdata()) == [0.3, 0.3]
    assert ax.collections[0].get_offsets().flatten().tolist() == pytest.approx([0.1, 0.8, 0.2, 0.9])  # each full run
    plt.close(figure)
    new = plot_forgetting_tradeoff(points, 0.3)
    assert new is not figure
    plt.close(new)
    with pytest.raises(ValueError, match="points is empty"):
        plot_forgetting_tradeoff([], 0.3)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS["cpu"].num_steps = 1  # type: ignore[misc]
    assert isinstance(SETTINGS["cpu"], PeftSettings)


def test_probes_can_share_one_encoder_but_nothing_else_can(tiny_folder):
    from tlcourse.models import load_text_encoder

    _, encoder = load_text_encoder(tiny_folder)
    tokenizer, probe = build_classifier(tiny_folder, "linear probe", encoder=encoder)
    assert tokenizer is None and probe.encoder is encoder
    assert not any(p.requires_grad for p in encoder.parameters())
    with pytest.raises(ValueError, match="only a linear probe may share a loaded encoder; 'LoRA' trains it"):
        build_classifier(tiny_folder, "LoRA", encoder=encoder)
