import math

import pytest
import torch
from sklearn import metrics as reference

from tlcourse import metrics
from tlcourse.metrics import (
    accuracy,
    accuracy_standard_error,
    confusion_matrix,
    f1_score,
    mean_and_std,
    most_confident_mistakes,
    per_class_accuracy,
)


def random_case(seed: int, classes: int = 4, count: int = 50):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (count,), generator=generator), torch.randint(0, classes, (count,), generator=generator)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scikit_learn(seed):
    predictions, targets = random_case(seed)
    assert accuracy(predictions, targets) == pytest.approx(reference.accuracy_score(targets, predictions))
    assert confusion_matrix(predictions, targets, 4).tolist() == reference.confusion_matrix(targets, predictions, labels=range(4)).tolist()
    assert f1_score(predictions, targets, average="macro") == pytest.approx(
        reference.f1_score(targets, predictions, average="macro"))
    binary_p, binary_t = predictions % 2, targets % 2
    assert f1_score(binary_p, binary_t) == pytest.approx(reference.f1_score(binary_t, binary_p))
    recall = reference.recall_score(targets, predictions, average=None, labels=range(4))
    torch.testing.assert_close(per_class_accuracy(confusion_matrix(predictions, targets, 4)),
                               torch.tensor(recall, dtype=torch.float64))


def test_logits_are_accepted():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    assert accuracy(logits, torch.tensor([0, 0])) == 0.5


def test_mean_and_std_uses_sample_std():
    mean, std = mean_and_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)
    assert mean_and_std([0.4]) == (0.4, 0.0)
    assert math.isnan(per_class_accuracy(torch.tensor([[0, 0], [1, 1]]))[0])


def test_bad_input():
    with pytest.raises(ValueError, match="same N"):
        accuracy(torch.tensor([1, 0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="no examples"):
        accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        confusion_matrix(torch.tensor([0]), torch.tensor([2]), 2)
    with pytest.raises(ValueError, match="average must be"):
        f1_score(torch.tensor([0]), torch.tensor([0]), average="micro")
    with pytest.raises(ValueError, match="values is empty"):
        mean_and_std([])


def test_most_confident_mistakes():
    logits = torch.tensor([[5.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    targets = torch.tensor([1, 1, 1, 0])
    # Mistakes: 0 (p=.993), 2 (p=.881), 3 (p=.953) -> by confidence 0, 3, 2.
    assert most_confident_mistakes(logits, targets, 10).tolist() == [0, 3, 2]
    with pytest.raises(ValueError, match="count"):
        most_confident_mistakes(logits, targets, 0)


def test_accuracy_standard_error_by_hand():
    assert accuracy_standard_error(0.8, 2) == pytest.approx(math.sqrt(0.16 / 2))
    with pytest.raises(ValueError, match="count"):
        accuracy_standard_error(0.5, 0)
    with pytest.raises(ValueError, match=r"accuracy must be in \[0, 1\]"):
        accuracy_standard_error(1.5, 10)


@pytest.mark.parametrize("call, error, message", [
    (lambda: accuracy(torch.tensor([1, 0]), torch.tensor([0.9, 0.2])), TypeError,
     "targets must be integer class labels, got dtype torch.float32"),
    (lambda: confusion_matrix(torch.tensor([1, 0]), torch.tensor([1.0, 0.0]), 2), TypeError,
     "targets must be integer class labels"),
    (lambda: accuracy(torch.tensor([0.9, 0.2]), torch.tensor([0, 0])), TypeError,
     r"predictions must be logits \(N, K\) or integer labels \(N,\), got a torch.float32 tensor of shape \(2,\)"),
    (lambda: accuracy(None, torch.tensor([0])), TypeError, "predictions and targets must be tensors, got NoneType"),
    (lambda: confusion_matrix(torch.tensor([0]), torch.tensor([0]), 0), ValueError,
     "num_classes must be a positive int, got 0"),
    (lambda: confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2.0), ValueError,
     "num_classes must be a positive int, got 2.0"),
])
def test_silently_truncated_inputs_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("call, error, message", [
    (lambda: mean_and_std([0.5, float("nan")]), ValueError, r"values must be finite numbers, got \[0.5, nan\]"),
    (lambda: mean_and_std(None), TypeError, "values must be a list of numbers, got NoneType"),
    (lambda: mean_and_std([]), ValueError, "values is empty"),
    (lambda: most_confident_mistakes([[0.0, 1.0]], torch.tensor([0]), 1), TypeError, "logits and targets must be tensors, got list"),
    (lambda: accuracy_standard_error(torch.tensor([0.5, 0.5]), 10), ValueError, "accuracy must be in"),
    (lambda: accuracy_standard_error(0.5, 2.5), ValueError, "count must be a positive int, got 2.5"),
])
def test_bad_summaries_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


# nearest_neighbour_accuracy (the PEFT chapter's source task), against a plain double loop

def _reference_nearest_neighbour(embeddings, groups, within=None) -> float:
    hits = 0
    for i in range(len(groups)):
        best, best_score = None, -2.0
        for j in range(len(groups)):
            if i == j or (within is not None and within[i] != within[j]):
                continue
            score = float(torch.cosine_similarity(embeddings[i], embeddings[j], dim=0))
            if score > best_score:
                best, best_score = j, score
        hits += groups[best] == groups[i]
    return hits / len(groups)


def test_nearest_neighbour_accuracy_matches_a_double_loop():
    from tlcourse.metrics import nearest_neighbour_accuracy

    generator = torch.Generator().manual_seed(0)
    groups = [i // 4 for i in range(24)]
    within = [i % 2 for i in range(24)]
    embeddings = torch.randn(24, 5, generator=generator) + 0.8 * torch.randn(6, 5, generator=generator)[groups]
    assert nearest_neighbour_accuracy(embeddings, groups) == pytest.approx(
        _reference_nearest_neighbour(embeddings, groups))
    assert nearest_neighbour_accuracy(embeddings, groups, within) == pytest.approx(
        _reference_nearest_neighbour(embeddings, groups, within))


def test_nearest_neighbour_within_removes_a_shared_shortcut():
    from tlcourse.metrics import nearest_neighbour_accuracy

    # the vectors carry only the sentiment: across sentiments every neighbour shares it, so a group
    # made of same-sentiment items is found; within a sentiment the groups are interleaved and missed
    within = [1, 1, 1, 1, 0, 0, 0, 0]
    embeddings = torch.tensor([[1.0, 0.0] if value else [0.0, 1.0] for value in within])
    embeddings = embeddings + 1e-3 * torch.arange(8.0)[:, None]  # break ties deterministically
    assert nearest_neighbour_accuracy(embeddings, [0, 0, 0, 0, 1, 1, 1, 1]) == 1.0
    groups = [0, 1, 0, 1, 2, 3, 2, 3]
    assert nearest_neighbour_accuracy(embeddings, groups, within) == pytest.approx(
        _reference_nearest_neighbour(embeddings, groups, within))


@pytest.mark.parametrize("arguments, message", [
    ((torch.zeros(2, 4), [0, 0, 1]), r"expected embeddings of shape \(3, dim\)"),
    ((torch.zeros(1, 4), [0]), "need at least two items"),
    ((torch.randn(3, 4), [0, 0, 1], [0, 0, 1]), "no other item with its `within` value"),
    ((torch.randn(3, 4), [0, 0, 1], [0, 0]), "within must have one entry per item"),
])
def test_nearest_neighbour_accuracy_rejects_bad_input(arguments, message):
    from tlcourse.metrics import nearest_neighbour_accuracy

    with pytest.raises(ValueError, match=message):
        nearest_neighbour_accuracy(*arguments)


@pytest.mark.parametrize("call, error, message", [
    (lambda: per_class_accuracy([[1, 0], [0, 1]]), TypeError, r"matrix must be a \(K, K\) tensor of counts, got list"),
    (lambda: metrics.paired_difference(None, [0.5]), TypeError, "first must be a list of one measurement per seed, got NoneType"),
    (lambda: metrics.paired_difference([0.5], "ab"), TypeError, "second must be a list of one measurement per seed, got str"),
    (lambda: metrics.nearest_neighbour_accuracy([[0.0, 1.0]], [0]), TypeError,
     r"embeddings must be a \(N, dim\) tensor and groups a list of N labels, got list and list"),
])
def test_non_tensors_and_non_lists_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


from hypothesis import given, settings, strategies as st


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40))))
def test_f1_accuracy_and_confusion_matrix_equal_scikit_learn(case):
    classes, pairs = case
    predictions, targets = (torch.tensor(column) for column in zip(*pairs))
    assert accuracy(predictions, targets) == reference.accuracy_score(targets, predictions)
    assert f1_score(predictions, targets, average="macro") == reference.f1_score(targets, predictions, average="macro", zero_division=0)
    assert f1_score(predictions, targets, positive=1) == reference.f1_score(targets, predictions, labels=[1], average="macro", zero_division=0)
    assert confusion_matrix(predictions, targets, classes).tolist() == reference.confusion_matrix(targets, predictions, labels=range(classes)).tolist()
