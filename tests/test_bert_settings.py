"""benchmarks/bert_settings.py: its optimiser groups, and the committed CSV that book/settings.md reads."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bert_settings import SETUPS, adamw_groups  # noqa: E402


class TinyClassifier(nn.Module):
    """The parameter names of a SentenceClassifier: encoder.*, with LayerNorm, then classifier.*."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.ModuleDict({"dense": nn.Linear(4, 4), "LayerNorm": nn.LayerNorm(4)})
        self.classifier = nn.Linear(4, 2)


@pytest.mark.parametrize("head_rate", [None, 1e-2])
def test_groups_hold_every_trainable_parameter_once_with_the_right_rate_and_decay(head_rate):
    model = TinyClassifier()
    model.encoder["dense"].weight.requires_grad_(False)  # frozen, like the word embeddings
    groups = adamw_groups(model, 1e-4, head_rate)
    placed = {id(p): group for group in groups for p in group["params"]}
    assert sum(len(group["params"]) for group in groups) == len(placed)  # none twice
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert id(parameter) not in placed, name
            continue
        group = placed[id(parameter)]
        exempt = name.endswith("bias") or ".LayerNorm." in name
        assert group["weight_decay"] == (0.0 if exempt else 0.01), name
        expected_rate = head_rate if head_rate is not None and name.startswith("classifier.") else 1e-4
        assert group["lr"] == expected_rate, name


def test_the_committed_csv_holds_one_row_per_setup_of_the_script():
    # A changed SETUPS without a rerun would leave the appendix showing other runs than the script's.
    made = pd.read_csv(ROOT / "benchmarks" / "results" / "bert_settings.csv",
                       dtype={"seeds": str, "validation accuracy per seed": str})
    assert len(made) == len(SETUPS)
    for (snippets, epochs, batch, frozen, rate, head_rate, seeds), (_, row) in zip(SETUPS, made.iterrows()):
        assert (row["snippets"], row["epochs"], row["batch"]) == (snippets, epochs, batch)
        assert row["word embeddings"] == ("frozen" if frozen else "trained")
        assert math.isclose(row["peak learning rate"], rate)
        assert pd.isna(row["head's own rate"]) if head_rate is None else math.isclose(row["head's own rate"], head_rate)
        assert row["seeds"].split() == [str(seed) for seed in seeds]
        per_seed = [float(a) for a in row["validation accuracy per seed"].split()]
        assert len(per_seed) == len(seeds) and all(0 <= a <= 1 for a in per_seed)
        assert math.isclose(row["validation accuracy"], sum(per_seed) / len(per_seed), abs_tol=1e-4)
        assert row["CPU s per run"] > 0
