"""Tests of tlcourse.ensembles (output-space fusion) against hand computations and torch references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tlcourse.ensembles import average_logits, average_probabilities, fit_ensemble_weights, weighted_ensemble


def test_averages_match_a_numpy_reference() -> None:
    generator = np.random.default_rng(0)
    logits = [generator.normal(size=(5, 3)) for _ in range(4)]
    exponentials = [np.exp(x - x.max(axis=1, keepdims=True)) for x in logits]
    probabilities = np.mean([e / e.sum(axis=1, keepdims=True) for e in exponentials], axis=0)
    tensors = [torch.tensor(x, dtype=torch.float32) for x in logits]
    np.testing.assert_allclose(average_probabilities(tensors).numpy(), probabilities, rtol=1e-5)
    np.testing.assert_allclose(average_logits(tensors).numpy(), np.mean(logits, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weighted_ensemble(tensors, [0.25] * 4).numpy(), probabilities, rtol=1e-5)
    # all weight on one model: that model's softmax, exactly what torch computes
    torch.testing.assert_close(weighted_ensemble(tensors, [0.0, 1.0, 0.0, 0.0]), tensors[1].softmax(dim=1))


def test_fit_ensemble_weights_on_simplex_and_prefers_good_model() -> None:
    torch.manual_seed(0)
    targets = torch.randint(0, 3, (50,))
    good = torch.nn.functional.one_hot(targets, 3).float() * 4
    noise = [torch.randn(50, 3) for _ in range(2)]
    weights = fit_ensemble_weights([noise[0], good, noise[1]], targets)
    assert weights.shape == (3,)
    assert (weights >= 0).all()
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(weights.argmax()) == 1


def test_fit_ensemble_weights_lowers_the_validation_loss_of_the_uniform_mix() -> None:
    torch.manual_seed(1)
    targets = torch.randint(0, 3, (40,))
    logits = [torch.randn(40, 3), torch.nn.functional.one_hot(targets, 3).float() + 0.5 * torch.randn(40, 3)]

    def nll(weights: torch.Tensor) -> float:  # negative log-likelihood of the mixture, computed directly
        mixed = sum(w * x.softmax(dim=1) for w, x in zip(weights, logits))
        return float(-mixed[torch.arange(40), targets].log().mean())

    assert nll(fit_ensemble_weights(logits, targets)) < nll(torch.tensor([0.5, 0.5]))


def test_fit_ensemble_weights_accepts_inference_mode_logits() -> None:
    with torch.inference_mode():  # what tlcourse.train.predict returns
        logits = [torch.randn(10, 3), torch.randn(10, 3)]
        targets = torch.zeros(10, dtype=torch.long)
    weights = fit_ensemble_weights(logits, targets, num_steps=5)
    assert float(weights.sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("call, error, message", [
    (lambda: average_probabilities([]), ValueError, "logits_list is empty"),
    (lambda: average_logits([torch.zeros(2, 3), torch.zeros(2, 4)]), ValueError, "mismatched shapes of logits"),
    (lambda: weighted_ensemble([torch.zeros(2, 3)] * 2, [0.9, 0.9]), ValueError, "sum to 1"),
    (lambda: weighted_ensemble([torch.zeros(1, 2)] * 2, [math.nan, 0.5]), ValueError,
     r"weights must be non-negative and sum to 1, got \[nan, 0.5\]"),
    (lambda: fit_ensemble_weights([torch.zeros(2, 3)], torch.zeros(3, dtype=torch.long)), ValueError, "targets"),
    (lambda: average_logits("logits"), TypeError, "logits_list must be a list, got str"),
    (lambda: average_probabilities([torch.zeros(1, 2), [[0.0, 1.0]]]), TypeError,
     r"logits_list\[1\] must be a torch.Tensor, got list"),
])
def test_bad_arguments_are_named(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
