"""Every public function of the library and of the chapter modules, given bad input, fails with a named error.

Two parts:

- :data:`CASES`, a table: one row per (function, argument, kind of bad input). Each row calls the
  function with valid values everywhere except that argument, and expects an exception of the
  given type whose message names the argument, states the expectation (the ``match`` pattern) and
  shows the value given. No raw library exception (``IndexError``, ``KeyError``, torch's
  ``RuntimeError``, "Boolean value of Tensor ...") and no silent result. The README's "What bad
  input does" section is rendered from this table by ``tools/bad_input_table.py``;
  :func:`test_readme_bad_input_section_is_rendered_from_the_cases` fails when they disagree.
- A coverage check: every public callable of ``tlcourse/*.py`` and ``tlcourse/chapters/*.py`` has a
  row, or is listed in :data:`EXEMPT` with the reason it takes no input to validate.
- A garbage sweep: each library function given ``None``, a string, ``[]``, NaN, ``-1`` or a matrix
  in every required argument raises ``TypeError``/``ValueError`` with a message of our own.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

import tlcourse
import tlcourse.chapters
from tlcourse.checkpoint import CheckpointError
from tlcourse.profiles import settings_for

ROOT = Path(__file__).resolve().parents[1]

# The kinds of bad input, in the order the README lists them.
KINDS = ("wrong type", "None", "empty", "NaN", "infinite", "wrong shape", "wrong dtype", "out of range",
         "unknown name", "mismatch", "unusable state")


@dataclass(frozen=True)
class Case:
    """One bad input: ``function(**{**valid(), argument: value})`` raises ``raises`` matching ``match``."""

    function: str  # "metrics.accuracy" or "chapters.bert.mistakes_table"
    argument: str  # the argument given the bad value
    kind: str  # one of KINDS
    value: Any  # the bad value
    raises: type[BaseException]
    match: str  # a regex for the expectation the message states
    valid: Callable[[], dict[str, Any]]  # valid values for the other arguments
    shows: str | None = None  # how the message shows the value, when not the default of `_shown`
    names: str | None = None  # the name the message uses, when the value sits inside the argument (a batch's labels)

    @property
    def id(self) -> str:
        return f"{self.function}-{self.argument}-{self.kind}"


def _target(function: str) -> Callable:
    module, _, name = function.rpartition(".")
    return getattr(importlib.import_module(f"tlcourse.{module}"), name)


def _shown(value: Any) -> str:
    """What a message must contain to show ``value``: a tensor's shape or dtype, a number, a repr."""
    if isinstance(value, torch.Tensor):
        return "|".join(re.escape(s) for s in (str(tuple(value.shape)), str(value.dtype), str(list(value.shape))))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple, dict)) and not value:
        return r"empty|\[\]|\(\)|\{\}"
    if isinstance(value, (list, tuple, dict)):
        return re.escape(repr(value)) + "|" + re.escape(type(value).__name__)
    if isinstance(value, (int, float, str)) or value is None:
        return re.escape(repr(value)) + "|" + re.escape(str(value))
    return re.escape(type(value).__name__)


# ---- small valid inputs ---------------------------------------------------------------------------
def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3))


def _loader() -> list:
    return [(torch.zeros(2, 4), torch.tensor([0, 1]))]


def _profile():
    from tlcourse.profiles import get_profile

    return get_profile("smoke")


def _logits() -> torch.Tensor:
    return torch.zeros(4, 3)


def _labels() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 0])


def _none() -> dict[str, Any]:
    return {}


def case(function: str, argument: str, kind: str, value: Any, raises: type[BaseException], match: str,
         valid: Callable[[], dict[str, Any]] = _none, shows: str | None = None, names: str | None = None) -> Case:
    assert kind in KINDS, kind
    return Case(function, argument, kind, value, raises, match, valid, shows, names)


T = torch.tensor
NAN, INF = math.nan, math.inf
V = ValueError
TE = TypeError

CASES: list[Case] = [
    # ---- checks ----
    case("checks.check_int", "value", "out of range", 0, V, r"positive int", lambda: {"name": "value"}),
    case("checks.check_int", "value", "wrong type", True, V, r"positive int", lambda: {"name": "value"}),
    case("checks.check_number", "value", "NaN", NAN, V, r"finite number", lambda: {"name": "value"}),
    case("checks.check_number", "value", "wrong type", "1", TE, r"a number", lambda: {"name": "value"}),
    case("checks.check_module", "value", "wrong type", 3, TE, r"nn\.Module", lambda: {"name": "value"}),
    case("checks.check_tensor", "value", "wrong shape", torch.zeros(2), V, r"2 dimension", lambda: {"name": "value", "dim": 2}),
    case("checks.check_sequence", "value", "empty", [], V, r"at least one", lambda: {"name": "value"}),
    case("checks.check_sequence", "value", "wrong type", "abc", TE, r"a list", lambda: {"name": "value"}),
    case("checks.check_device", "value", "unknown name", "tpu", V, r"device name", lambda: {"name": "value"}),
    case("checks.check_path", "value", "None", None, TE, r"file or folder path", lambda: {"name": "value"}),
    case("checks.check_instance", "value", "wrong type", "3", TE, r"must be a dict", lambda: {"name": "value", "kind": dict}),
    case("checks.check_choice", "value", "unknown name", "max", V, r"one of \['mean'\]", lambda: {"name": "value", "choices": ["mean"]}),
    case("checks.check_fractions", "value", "NaN", [NAN, 1.0], V, r"sum to 1", lambda: {"name": "value"}, shows="nan"),
    case("checks.check_optimizer_covers", "optimizer", "mismatch", torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
         V, r"not in the model", lambda: {"model": _net()}, shows="2 parameter"),
    case("checks.check_optimizer_covers", "optimizer", "None", None, TE, r"torch\.optim\.Optimizer", lambda: {"model": _net()}),
    # ---- assets ----
    case("assets.get_asset", "name", "unknown name", "vgg19", V, r"expected one of"),
    case("assets.is_cached", "name", "unknown name", "vgg19", V, r"expected one of"),
    case("assets.package_path", "package", "empty", "", TE, r"importable package name"),
    case("assets.resolve", "name", "unknown name", "vgg19", V, r"expected one of", lambda: {"profile": _profile()}),
    case("assets.resolve", "profile", "wrong type", "smoke", TE, r"profile", lambda: {"name": "digits"}),
    # ---- batchnorm ----
    case("batchnorm.frozen_norms_to_eval", "model", "None", None, TE, r"nn\.Module"),
    case("batchnorm.recompute_batchnorm_statistics", "loader", "empty", [], V, r"at least one",
         lambda: {"model": nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))}, shows="no batches"),
    case("batchnorm.batchnorm_mode_accuracies", "labels", "wrong shape", torch.zeros(4, 1, dtype=torch.long), V,
         r"1 dimension", lambda: {"model": _net(), "images": torch.zeros(4, 4)}),
    # ---- checkpoint ----
    case("checkpoint.save_state_dict", "state_dict", "wrong type", [1, 2], TE, r"mapping of names to tensors",
         lambda: {"path": "/tmp/unused.safetensors"}),
    case("checkpoint.save_state_dict", "state_dict", "NaN", {"w": T([NAN])}, CheckpointError, r"non-finite|NaN",
         lambda: {"path": "/tmp/unused.safetensors"}, shows="w"),
    case("checkpoint.check_state_dict_matches", "state_dict", "mismatch", {"0.weight": torch.zeros(2, 2)}, CheckpointError,
         r"missing|shape", lambda: {"model": _net()}, shows="0.bias"),
    case("checkpoint.save_checkpoint", "state", "wrong type", [1], TE, r"mapping", lambda: {"path": "/tmp/unused.safetensors"}),
    case("checkpoint.load_checkpoint", "path", "unknown name", "/no/such/checkpoint.safetensors", CheckpointError, r"does not exist"),
    case("checkpoint.save_training_state", "model", "None", None, TE, r"model must be an nn\.Module",
         lambda: {"path": "/tmp/unused.safetensors", "optimizer": None, "epoch": 1, "history": None}),
    case("checkpoint.restore_training_state", "path", "unknown name", "/no/such/checkpoint.safetensors", CheckpointError,
         r"does not exist", lambda: {"model": _net(), "optimizer": None}),
    # ---- claims ----
    case("claims.expect", "measured", "NaN", NAN, V, r"real number",
         lambda: {"claim": "x", "profile": _profile(), "above": 0.0}),
    case("claims.expect", "above", "None", None, V, r"needs a bound",
         lambda: {"claim": "x", "measured": 1.0, "profile": _profile()}, shows="above="),
    # ---- cli ----
    case("cli.fetch", "name", "unknown name", "vgg19", V, r"canonical asset|expected one of"),
    case("cli.main", "argv", "unknown name", ["launch"], SystemExit, r".*", shows=""),
    # ---- data ----
    case("data.load_cifar10", "train", "wrong type", "yes", TE, r"a bool"),
    case("data.load_rotten_tomatoes_snippets", "path", "unknown name", "/no/such/file.csv.bz2", V, r"an existing \.csv\.bz2 file"),
    case("data.save_sst2", "splits", "wrong type", [("a", 1)], TE, r"dict of split name"),
    case("data.save_sst2", "splits", "out of range", {"train": (["a"], [2])}, V, r"0 or 1", shows="2"),
    case("data.load_sst2", "split", "unknown name", "test", V, r"'train' or 'validation'"),
    case("data.make_loader", "batch_size", "out of range", 0, V, r"positive int",
         lambda: {"dataset": torch.utils.data.TensorDataset(torch.zeros(3, 1)), "shuffle": False}),
    case("data.make_loader", "dataset", "empty", torch.utils.data.TensorDataset(torch.zeros(0, 1)), V, r"at least one",
         lambda: {"batch_size": 2, "shuffle": False}, shows="empty"),
    case("data.per_class_subset", "labels", "wrong dtype", T([0.5, 1.0]), TE, r"integer class labels",
         lambda: {"per_class": 1, "seed": 0}),
    case("data.per_class_subset", "per_class", "out of range", 5, V, r"fewer than", lambda: {"labels": [0, 0, 1], "seed": 0}),
    case("data.split_indices", "fractions", "NaN", [NAN, 0.5], V, r"sum to 1", lambda: {"count": 10, "seed": 0}, shows="nan"),
    case("data.split_indices", "count", "out of range", -1, V, r"positive int", lambda: {"fractions": [0.5, 0.5], "seed": 0}),
    case("data.split_by_group", "groups", "empty", [], V, r"empty", lambda: {"fractions": [0.5, 0.5], "seed": 0}),
    case("data.split_by_group", "groups", "wrong type", "abc", TE, r"list of group names", lambda: {"fractions": [1.0], "seed": 0}),
    # ---- distributed ----
    case("distributed.init_from_environment", "device", "unknown name", "tpu", V, r"device|expected"),
    case("distributed.process_device", "device", "unknown name", "tpu", V, r"device|expected"),
    case("distributed.shard_loader", "loader", "wrong type", [1, 2], TE, r"DataLoader"),
    case("distributed.split_for_evaluation", "loader", "None", None, TE, r"loader"),
    case("distributed.sum_across_processes", "values", "wrong type", ["1.0"], TE, r"list of numbers", lambda: {"device": "cpu"}),
    case("distributed.sum_across_processes", "device", "unknown name", "tpu", V, r"device name", lambda: {"values": [1.0]}),
    case("distributed.gather_across_processes", "tensors", "wrong type", [1.0], TE, r"torch\.Tensor", shows="1.0"),
    # ---- ensembles ----
    case("ensembles.average_probabilities", "logits_list", "mismatch", [torch.zeros(2, 3), torch.zeros(3, 3)], V,
         r"mismatched shapes", shows=r"\(3, 3\)"),
    case("ensembles.average_logits", "logits_list", "wrong shape", [torch.zeros(3)], V, r"\(N, C\)"),
    case("ensembles.weighted_ensemble", "weights", "out of range", [2.0, -1.0], V, r"non-negative and sum to 1",
         lambda: {"logits_list": [torch.zeros(2, 3), torch.zeros(2, 3)]}, shows=r"-1\.0"),
    case("ensembles.fit_ensemble_weights", "val_targets", "wrong shape", T([0, 1, 2]), V, r"targets",
         lambda: {"val_logits_list": [torch.zeros(2, 3)]}, shows="3"),
    # ---- footprint ----
    case("footprint.training_memory", "batch", "mismatch", {"inputs": torch.zeros(2, 4)}, V, r"'labels' entry",
         lambda: {"model": _net()}, shows="inputs"),
    case("footprint.forward_flops", "example_inputs", "wrong type", "abc", TE, r"a tensor, a tuple or list, or a mapping",
         lambda: {"model": _net()}, shows="str"),
    case("footprint.estimate_training_seconds", "sustained_flops", "NaN", NAN, V, r"must be positive",
         lambda: {"flops_per_example": 1e9, "examples": 10, "epochs": 1}),
    # ---- fusion ----
    case("fusion.check_compatible", "second", "mismatch", {"w": torch.zeros(3)}, V, r"mismatched shapes",
         lambda: {"first": {"w": torch.zeros(2)}}, shows=r"\(3,\)"),
    case("fusion.interpolate", "alpha", "out of range", 1.5, V, r"\[0, 1\]",
         lambda: {"pretrained": {"w": torch.zeros(2)}, "finetuned": {"w": torch.ones(2)}}),
    case("fusion.interpolate", "alpha", "NaN", NAN, V, r"finite", lambda: {"pretrained": {"w": torch.zeros(2)}, "finetuned": {"w": torch.ones(2)}}),
    case("fusion.average_state_dicts", "weights", "NaN", [NAN, 1.0], V, r"finite and non-negative",
         lambda: {"state_dicts": [{"w": torch.zeros(2)}, {"w": torch.ones(2)}]}, shows="nan"),
    case("fusion.average_state_dicts", "state_dicts", "empty", [], V, r"at least one"),
    case("fusion.uniform_soup", "state_dicts", "wrong type", {"w": torch.zeros(2)}, TE, r"a list"),
    case("fusion.greedy_soup", "evaluate_fn", "NaN", lambda state: NAN, V, r"finite score",
         lambda: {"state_dicts": [{"w": torch.zeros(2)}]}, shows="nan"),
    case("fusion.state_dict_accuracy", "state_dict", "mismatch", {"w": torch.zeros(2)}, CheckpointError, r"missing|unexpected",
         lambda: {"model": _net(), "loader": _loader()}, shows="w"),
    case("fusion.interpolation_path", "alphas", "out of range", [0.0, 2.0], V, r"\[0\.0, 1\.0\]",
         lambda: {"model": _net(), "start": _net().state_dict(), "end": _net().state_dict(), "loader": _loader()}, shows="2.0"),
    # ---- history ----
    case("history.History", "records", "wrong type", "epoch", TE, r"list of dicts"),
    # ---- images ----
    case("images.image_transforms", "image_size", "out of range", 8, V, r"at least", lambda: {"train": False}),
    case("images.validate_images", "images", "wrong shape", torch.zeros(2, 1, 32, 32), V, r"3 channels", shows="got 1"),
    case("images.validate_images", "images", "wrong dtype", torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TE, r"float tensor"),
    case("images.mnist_as_rgb", "images", "wrong shape", torch.zeros(2, 3, 28, 28), V, r"\(N, H, W\)", lambda: {"image_size": 32}),
    case("images.mnist_as_rgb", "images", "wrong dtype", torch.rand(2, 28, 28), TE, r"uint8 pixels in \[0, 255\]", lambda: {"image_size": 32}),
    case("images.mnist_as_rgb", "std", "out of range", (0.2, 0.0, 0.2), V, r"must be positive",
         lambda: {"images": torch.zeros(2, 28, 28, dtype=torch.uint8), "image_size": 32}, shows="got 0"),
    case("images.image_transforms", "mean", "NaN", (NAN, 0.5, 0.5), V, r"finite number", lambda: {"image_size": 32, "train": False},
         shows="nan"),
    case("images.image_transforms", "mean", "wrong shape", (0.5, 0.5), V, r"3 numbers", lambda: {"image_size": 32, "train": False},
         shows=r"\[0\.5, 0\.5\]"),
    # ---- integrity ----
    case("integrity.file_digest", "algorithm", "unknown name", "sha999", V, r"algorithm", lambda: {"path": __file__}),
    case("integrity.digest_matches", "expected", "out of range", "abc", V, r"at least 8 hex digits", lambda: {"path": __file__}),
    case("integrity.write_sidecar", "digest", "wrong type", 12, V, r"64 lowercase hex digits", lambda: {"path": "/tmp/unused"}),
    case("integrity.sidecar_matches", "path", "None", None, TE, r"path"),
    case("integrity.safetensors_complete", "path", "None", None, TE, r"path"),
    case("integrity.zip_complete", "path", "None", None, TE, r"path"),
    case("integrity.hub_file_complete", "path", "None", None, TE, r"path"),
    case("integrity.cifar10_batches_complete", "folder", "None", None, TE, r"folder"),
    # ---- lora ----
    case("lora.LoRALinear", "rank", "out of range", 0, V, r"positive int", lambda: {"base": nn.Linear(4, 4), "alpha": 1.0}),
    case("lora.LoRALinear", "base", "wrong type", nn.Conv1d(1, 1, 1), TE, r"nn\.Linear", lambda: {"rank": 2, "alpha": 1.0}),
    case("lora.LoRALinear", "dropout", "out of range", 1.0, V, r"\[0, 1\)", lambda: {"base": nn.Linear(4, 4), "rank": 2, "alpha": 1.0}),
    case("lora.add_lora", "target_modules", "empty", [], V, r"at least one", lambda: {"model": _net(), "rank": 2, "alpha": 1.0}),
    case("lora.add_lora", "target_modules", "unknown name", ["query"], V, r"no module", lambda: {"model": _net(), "rank": 2, "alpha": 1.0}),
    case("lora.merge_lora", "model", "mismatch", nn.Linear(2, 2), V, r"no LoRALinear", shows="Linear|model"),
    case("lora.lora_parameter_count", "rank", "out of range", -1, V, r"positive int", lambda: {"in_features": 4, "out_features": 4}),
    # ---- metrics ----
    case("metrics.accuracy", "targets", "wrong dtype", torch.zeros(4), TE, r"integer class labels", lambda: {"predictions": _logits()}),
    case("metrics.accuracy", "targets", "wrong shape", T([0, 1]), V, r"same N", lambda: {"predictions": _logits()}),
    case("metrics.accuracy", "predictions", "empty", torch.zeros(0, 3), V, r"at least one", lambda: {"targets": T([], dtype=torch.long)}, shows="empty"),
    case("metrics.confusion_matrix", "targets", "out of range", T([0, 1, 2, 5]), V, r"\[0, 2\]",
         lambda: {"predictions": _labels(), "num_classes": 3}, shows="5"),
    case("metrics.accuracy", "predictions", "NaN", torch.full((2, 3), NAN), V, r"expected finite logits",
         lambda: {"targets": T([0, 1])}, shows="6 NaN"),
    case("metrics.per_class_accuracy", "matrix", "wrong shape", torch.zeros(2, 3), V, r"square"),
    case("metrics.f1_score", "average", "unknown name", "micro", V, r"'binary' or 'macro'", lambda: {"predictions": _labels(), "targets": _labels()}),
    case("metrics.mean_and_std", "values", "NaN", [1.0, NAN], V, r"finite numbers", shows="nan"),
    case("metrics.mean_and_std", "values", "empty", [], V, r"at least one"),
    case("metrics.most_confident_mistakes", "count", "out of range", 0, V, r"positive int", lambda: {"logits": _logits(), "targets": _labels()}),
    case("metrics.accuracy_standard_error", "accuracy", "out of range", 1.5, V, r"\[0, 1\]", lambda: {"count": 10}),
    case("metrics.paired_difference", "second", "NaN", [1.0, NAN], V, r"NaN", lambda: {"first": [1.0, 2.0]}, shows="nan"),
    case("metrics.paired_difference", "confidence", "out of range", 1.0, V, r"\(0, 1\)", lambda: {"first": [1.0, 2.0], "second": [1.0, 2.5]}),
    case("metrics.nearest_neighbour_accuracy", "groups", "wrong type", "abc", TE, r"a list of N labels",
         lambda: {"embeddings": torch.zeros(3, 2)}, shows="str"),
    case("metrics.nearest_neighbour_accuracy", "embeddings", "wrong shape", torch.zeros(3, 2), V, r"\(2, dim\)", lambda: {"groups": [0, 1]}),
    # ---- models ----
    case("models.build_vgg16", "num_classes", "out of range", 0, V, r"positive int", lambda: {"pretrained": False}),
    case("models.load_efficientnet_lite0", "num_classes", "out of range", 0, V, r"positive int"),
    case("models.load_image_model", "num_classes", "None", None, V, r"positive int", lambda: {"profile": _profile()}),
    case("models.text_model_source", "asset_name", "unknown name", "gpt2", V, r"a text model", lambda: {"profile": _profile()}),
    case("models.load_text_classifier", "num_labels", "out of range", 1, V, r">= 2", lambda: {"source": "unused"}),
    case("models.load_text_encoder", "source", "None", None, TE, r"source"),
    case("models.vgg16_blocks", "model", "wrong type", nn.Linear(2, 2), V, r"VGG model"),
    case("models.backbone_blocks", "architecture", "unknown name", "resnet", V, r"'vgg16' or 'efficientnet-lite0'", lambda: {"model": _net()}),
    case("models.SentenceClassifier", "pooling", "unknown name", "max", V, r"one of", lambda: {"encoder": _net(), "num_labels": 2}),
    case("models.SentenceClassifier", "num_labels", "out of range", 1, V, r">= 2", lambda: {"encoder": _net()}),
    # ---- optimization ----
    case("optimization.weight_decay_groups", "learning_rate", "NaN", NAN, V, r"finite number", lambda: {"model": _net(), "weight_decay": 0.0}),
    case("optimization.linear_warmup_schedule", "warmup_steps", "out of range", 20, V, r"\[0, total_steps=10\]",
         lambda: {"optimizer": torch.optim.SGD(_net().parameters(), lr=0.1), "total_steps": 10}),
    case("optimization.layerwise_lr_groups", "decay", "out of range", 1.5, V, r"\(0, 1\]", lambda: {"model": _net(), "learning_rate": 0.1}),
    case("optimization.parameter_groups", "learning_rates", "mismatch", {"1.": 0.1}, V, r"match no prefix",
         lambda: {"model": _net()}, shows=r"'1\.'"),
    case("optimization.parameter_groups", "learning_rates", "out of range", {"0.": -0.1}, V, r"must be positive",
         lambda: {"model": _net()}, shows="-0.1"),
    case("optimization.adamw", "groups", "empty", [{"params": [], "lr": 0.1}], V, r"every parameter group is empty",
         shows=r"all 1 have 'params': \[\]"),
    case("optimization.adamw", "groups", "wrong shape", [{"params": [torch.zeros(1, requires_grad=True)]}], V,
         r"dicts with 'params' and 'lr'", shows=r"\{'params': \[tensor"),
    case("optimization.discriminative_learning_rates", "lowest", "out of range", 0.5, V, r"0 < lowest <= highest",
         lambda: {"blocks": [_net()], "highest": 0.1}),
    # ---- plotting ----
    case("plotting.plot_learning_curves", "histories", "wrong type", [1], TE, r"History or a dict"),
    case("plotting.plot_confusion_matrix", "matrix", "wrong shape", torch.zeros(2, 2), V, r"\(3, 3\) matrix",
         lambda: {"class_names": ["a", "b", "c"]}),
    case("plotting.plot_image_grid", "images", "empty", torch.zeros(0, 3, 8, 8), V, r"at least one", shows="no images"),
    case("plotting.plot_mean_and_spread", "rows", "empty", [], V, r"at least one", lambda: {"x": "budget", "group": "strategy"}),
    case("plotting.plot_transfer_vocabulary", "ax", "wrong type", "axes", TE, r"matplotlib Axes or None"),
    case("plotting.plot_transfer_story", "ax", "wrong type", "axes", TE, r"matplotlib Axes or None"),
    # ---- precision ----
    case("precision.choose_precision", "capability", "wrong shape", (8,), V, r"\(major, minor\) pair", lambda: {"device_type": "cuda"}),
    case("precision.resolve_precision", "mixed_precision", "unknown name", "fp8", V, r"a bool or one of", lambda: {"device": "cpu"}),
    case("precision.autocast", "precision", "unknown name", "fp8", V, r"one of \['bf16', 'fp16', 'fp32'\]", lambda: {"device": "cpu"}),
    case("precision.autocast", "device", "unknown name", "tpu", V, r"device name", lambda: {"precision": "fp32"}),
    case("precision.make_grad_scaler", "precision", "None", None, V, r"one of \['bf16'", lambda: {"device": "cpu"}),
    case("precision.describe_precision", "precision", "unknown name", "fp61", V, r"one of \['bf16'", lambda: {"device": "cpu"}),
    case("precision.announce_precision", "precision", "None", None, V, r"one of \['bf16'", lambda: {"device": "cpu"}),
    # ---- profiles ----
    case("profiles.get_profile", "name", "unknown name", "fast", V, r"\['cpu', 'gpu', 'rehearsal', 'smoke'\]"),
    case("profiles.settings_for", "table", "mismatch", {"gpu": 1}, V, r"no entry for profile", lambda: {"profile": _profile()}, shows="smoke"),
    case("profiles.Profile", "num_workers", "out of range", -1, V, r"num_workers",
         lambda: {"name": "x", "device": "cpu", "use_standins": True, "allow_download": False, "mixed_precision": False}),
    # ---- rehearsal ----
    case("rehearsal.write_synthetic_assets", "examples", "out of range", 5, V, r"an int >= 10", lambda: {"root": "/tmp/unused"}),
    case("rehearsal.environment_for", "root", "None", None, TE, r"root"),
    # ---- runtime ----
    case("runtime.choose_device", "preferred", "unknown name", "tpu", V, r"must be one of"),
    case("runtime.move_to_device", "device", "unknown name", "tpu", V, r"device", lambda: {"batch": torch.zeros(2)}),
    case("runtime.seed_everything", "seed", "out of range", -1, V, r"non-negative"),
    case("runtime.seed_everything", "seed", "wrong type", 1.5, TE, r"an int", shows="float"),
    case("runtime.make_generator", "seed", "wrong type", "1", TE, r"an int", shows="str"),
    case("runtime.restore_rng_state", "state", "mismatch", {"python": None}, V, r"missing", shows="torch"),
    case("runtime.network_reachable", "timeout", "NaN", NAN, V, r"positive number of seconds", lambda: {"host": "example.org"}),
    case("runtime.network_reachable", "host", "None", None, TE, r"non-empty host name"),
    # ---- text ----
    case("text.validate_texts_and_labels", "texts", "wrong type", "one review", TE, r"list of strings", lambda: {"labels": None}),
    case("text.validate_texts_and_labels", "labels", "out of range", [0, 3], V, r"outside the label set",
         lambda: {"texts": ["a", "b"], "label_set": [0, 1]}, shows="3"),
    case("text.encode", "max_length", "out of range", 1, V, r"an int >= 2", lambda: {"tokenizer": None, "texts": ["a"]}),
    case("text.TextClassificationDataset", "texts", "empty", [], V, r"at least one",
         lambda: {"labels": [], "tokenizer": None, "max_length": 8}),
    case("text.PaddingCollator", "padding_side", "unknown name", "top", V, r"'right' or 'left'", lambda: {"pad_token_id": 0}),
    case("text.padded_token_counts", "lengths", "wrong type", 5, TE, r"list of token counts", lambda: {"batch_size": 2, "fixed_length": 8}, shows="int"),
    case("text.padded_token_counts", "lengths", "out of range", [-1, 3], V, r"non-negative token counts",
         lambda: {"batch_size": 2, "fixed_length": 8}, shows="-1"),
    case("text.LengthGroupedBatchSampler", "lengths", "empty", [], V, r"at least one", lambda: {"batch_size": 2}),
    case("text.length_grouped_loader", "dataset", "wrong type", [1, 2], TE, r"TextClassificationDataset", lambda: {"batch_size": 2}),
    case("pooling.pool_tokens", "pooling", "unknown name", "max", V, r"one of",
         lambda: {"outputs": None, "attention_mask": torch.ones(1, 2)}),
    case("pooling.sentence_features", "poolings", "empty", [], V, r"non-empty list", lambda: {"encoder": _net(), "loader": []}),
    case("pooling.dataset_features", "dataset", "wrong type", [1, 2], TE, r"lengths\(\) method",
         lambda: {"encoder": _net(), "poolings": ["mean"], "batch_size": 2, "collate_fn": None}, shows="list"),
    # ---- train ----
    case("train.move_to_device", "device", "unknown name", "tpu", V, r"device", lambda: {"batch": torch.zeros(2)}),
    case("train.fit", "num_epochs", "out of range", 0, V, r"positive int",
         lambda: (lambda m: {"model": m, "train_loader": _loader(), "optimizer": torch.optim.SGD(m.parameters(), lr=0.1)})(_net())),
    case("train.fit", "max_steps_per_epoch", "out of range", 0, V, r"positive int",
         lambda: (lambda m: {"model": m, "train_loader": _loader(), "optimizer": torch.optim.SGD(m.parameters(), lr=0.1),
                             "num_epochs": 1})(_net())),
    case("train.fit", "train_loader", "out of range", [(torch.zeros(2, 4), T([0, 7]))], V, r"labels must be in \[0, 2\]",
         lambda: (lambda m: {"model": m, "optimizer": torch.optim.SGD(m.parameters(), lr=0.1), "num_epochs": 1})(_net()),
         shows="7", names="labels"),
    case("train.fit", "train_loader", "wrong dtype", [(torch.zeros(2, 4), T([0.0, 1.0]))], TE, r"integer class labels",
         lambda: (lambda m: {"model": m, "optimizer": torch.optim.SGD(m.parameters(), lr=0.1), "num_epochs": 1})(_net()),
         shows="float32", names="labels"),
    case("train.fit", "train_loader", "empty", [], V, r"at least one batch",
         lambda: (lambda m: {"model": m, "optimizer": torch.optim.SGD(m.parameters(), lr=0.1), "num_epochs": 1})(_net())),
    case("train.fit", "max_grad_norm", "out of range", -1.0, V, r"positive or None",
         lambda: (lambda m: {"model": m, "train_loader": _loader(), "optimizer": torch.optim.SGD(m.parameters(), lr=0.1),
                             "num_epochs": 1})(_net())),
    case("train.predict", "loader", "empty", [], V, r"at least one", lambda: {"model": _net()}),
    case("train.evaluate", "loader", "wrong shape", [(torch.zeros(2, 4), T([[0], [1]]))], V, r"targets of shape \(2,\)",
         lambda: {"model": _net()}, shows=r"\(2, 1\)", names="targets"),
    # ---- transfer ----
    case("transfer.freeze", "prefixes", "unknown name", ["backbone."], V, r"no parameter name starts with", lambda: {"model": _net()}),
    case("transfer.unfreeze", "model", "None", None, TE, r"nn\.Module"),
    case("transfer.freeze_first", "count", "out of range", 3, V, r"\[0, 1\]", lambda: {"blocks": [_net()]}),
    case("transfer.locate_submodule", "path", "unknown name", "classifier.6", V, r"no submodule", lambda: {"model": _net()}),
    case("transfer.replace_head", "path", "empty", "", TE, r"dotted submodule name", lambda: {"model": _net(), "num_classes": 2}, shows="''"),
    case("transfer.replace_head", "num_classes", "out of range", 0, V, r"positive int", lambda: {"model": _net(), "path": "0"}),
    case("transfer.count_parameters", "model", "wrong type", [1], TE, r"nn\.Module"),
    case("transfer.trainable_parameter_names", "model", "None", None, TE, r"nn\.Module"),
    case("transfer.split_head", "head", "unknown name", "fc", V, r"no submodule", lambda: {"model": _net()}),
    case("transfer.extract_features", "loader", "empty", [], V, r"at least one", lambda: {"backbone": _net()}),
    case("transfer.freeze_batchnorm", "model", "None", None, TE, r"nn\.Module"),
    case("transfer.linear_probe_then_fine_tune", "head", "unknown name", "fc", V, r"head: model has no submodule",
         lambda: {"model": _net(), "probe": print, "fine_tune": print}),
]


def _transfer_splits():
    from tlcourse.chapters.concepts import TransferSplits

    return TransferSplits(*(torch.utils.data.TensorDataset(torch.zeros(2, 1, 28, 28), T([0, 1])) for _ in range(4)))


def _chapter_settings(chapter: str):
    return settings_for(importlib.import_module(f"tlcourse.chapters.{chapter}").SETTINGS, _profile())


def _params() -> list[torch.Tensor]:
    return [torch.zeros(2), torch.zeros(3)]


def _two_layer_weights() -> dict[str, torch.Tensor]:
    return {"W1": torch.zeros(4, 5), "b1": torch.zeros(5), "W2": torch.zeros(5, 3), "b2": torch.zeros(3)}


def _text_dataset():
    from tlcourse.text import TextClassificationDataset

    class Tokenizer:  # whitespace tokens, ids by length; enough for the checks before training
        model_max_length = 16

        def __call__(self, texts, **kwargs):
            return {"input_ids": [[1] + [2] * len(t.split()) + [3] for t in texts],
                    "attention_mask": [[1] * (len(t.split()) + 2) for t in texts]}

    return TextClassificationDataset(["good film", "bad film"], [1, 0], Tokenizer(), max_length=8)


CASES += [
    # ---- chapters.concepts ----
    case("chapters.concepts.settings_on_device", "profile", "wrong type", "smoke", TE, r"Profile"),
    case("chapters.concepts.SmallCNN", "num_classes", "out of range", 0, V, r"positive int"),
    case("chapters.concepts.load_transfer_splits", "config", "None", None, TE, r"ConceptsSettings"),
    case("chapters.concepts.budget_subset", "budget", "out of range", 0, V, r"positive int",
         lambda: {"pool": torch.utils.data.TensorDataset(torch.zeros(4, 1), T([0, 0, 1, 1])), "seed": 0}),
    case("chapters.concepts.strategy_stages", "strategy", "unknown name", "adapter", V, r"expected one of", lambda: {"num_epochs": 4}),
    case("chapters.concepts.strategy_stages", "probe_fraction", "out of range", 1.0, V, r"0 < probe_fraction < 1",
         lambda: {"strategy": "lp_ft", "num_epochs": 4}),
    case("chapters.concepts.train_strategy", "strategy", "unknown name", "adapter", V, r"must be one of",
         lambda: {"model": _net(), "head": "0", "stages": [("full", 1)], "train_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])),
                  "validation_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])),
                  "config": _chapter_settings("concepts"), "seed": 0}),
    case("chapters.concepts.train_stage", "learning_rates", "empty", [], V, r"learning_rates is empty",
         lambda: {"model": _net(), "num_epochs": 1, "train_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])),
                  "validation_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])),
                  "config": _chapter_settings("concepts"), "seed": 0}),
    # ---- chapters.concepts_experiments ----
    case("chapters.concepts_experiments.held_out_accuracy", "test_set", "empty", torch.utils.data.TensorDataset(torch.zeros(0, 4), T([], dtype=torch.long)),
         V, r"positive int", lambda: {"model": _net()}, shows="got 0"),
    case("chapters.concepts_experiments.pretrain_sources", "config", "wrong type", {"batch_size": 2}, TE, r"ConceptsSettings",
         lambda: {"splits": _transfer_splits()}, shows="dict"),
    case("chapters.concepts_experiments.pretrain_sources", "splits", "None", None, TE, r"TransferSplits",
         lambda: {"config": _chapter_settings("concepts")}),
    case("chapters.concepts_experiments.run_budget_comparison", "sources", "empty", {}, V, r"every seed",
         lambda: {"splits": _transfer_splits(), "config": _chapter_settings("concepts")}),
    case("chapters.concepts_experiments.run_imagenet_comparison", "profile", "wrong type", "smoke", TE, r"Profile",
         lambda: {"splits": _transfer_splits(), "config": _chapter_settings("concepts")}),
    case("chapters.concepts_experiments.run_negative_transfer", "sources", "mismatch", {7: None}, V, r"every seed",
         lambda: {"splits": _transfer_splits(), "config": _chapter_settings("concepts")}, shows="7"),
    case("chapters.concepts_experiments.accuracies", "strategy", "unknown name", "adapter", V, r"no row for strategy",
         lambda: {"rows": [{"budget": 2, "strategy": "scratch", "seed": 1, "accuracy": 0.5}], "budget": 2}),
    # ---- chapters.fusion ----
    case("chapters.fusion.rotate_digits", "images", "wrong shape", torch.zeros(2, 8, 8), V, r"\(N, 1, H, W\)", lambda: {"degrees": 10.0}),
    case("chapters.fusion.rotate_digits", "degrees", "NaN", NAN, V, r"finite", lambda: {"images": torch.zeros(2, 1, 8, 8)}),
    case("chapters.fusion.make_broad_digits", "copies", "out of range", 0, V, r"positive int",
         lambda: {"images": torch.zeros(2, 1, 8, 8), "max_rotation_degrees": 10.0, "generator": torch.Generator()}),
    case("chapters.fusion.optical_digits_as_mnist", "images", "wrong shape", torch.zeros(2, 1, 8, 8), V, r"\(N, H, W\)"),
    case("chapters.fusion.load_target_task", "labels", "mismatch", T([0, 1, 2]), V, r"same length",
         lambda: {"images": torch.zeros(2, 1, 28, 28), "seed": 0, "num_train_examples": 1, "max_eval_examples": 1,
                  "shift_rotation_degrees": 30.0}, shows="3"),
    case("chapters.fusion.make_digit_mlp", "hidden_size", "out of range", 0, V, r"positive int", lambda: {"num_classes": 10}),
    case("chapters.fusion.pretrain_digit_classifier", "num_epochs", "out of range", 0, V, r"positive int",
         lambda: {"hidden_size": 8, "loader": [(torch.zeros(2, 1, 28, 28), T([0, 1]))]}),
    case("chapters.fusion.fine_tune_copy", "batch_size", "out of range", 0, V, r"positive int",
         lambda: {"start": _net(), "train_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])),
                  "learning_rate": 0.1, "seed": 0, "num_epochs": 1}),
    case("chapters.fusion.permute_hidden_units", "permutations", "mismatch", (T([0, 0, 1]), T([0, 1])), V, r"permutation",
         lambda: (lambda m: {"model_or_state": m})(importlib.import_module("tlcourse.chapters.fusion").make_digit_mlp(10, 3)),
         shows=r"\[0, 0, 1\]"),
    # ---- chapters.math_losses ----
    case("chapters.math_losses.log_softmax", "logits", "wrong dtype", T([[1, 2]]), TE, r"floating point"),
    case("chapters.math_losses.softmax_cross_entropy", "labels", "out of range", T([0, 5, 1, 2]), V, r"\[0, 2\]",
         lambda: {"logits": _logits()}, shows="5"),
    case("chapters.math_losses.softmax_cross_entropy", "label_smoothing", "NaN", NAN, V, r"finite number",
         lambda: {"logits": _logits(), "labels": _labels()}),
    case("chapters.math_losses.softmax_cross_entropy", "reduction", "unknown name", "avg", V, r"'mean', 'sum' or 'none'",
         lambda: {"logits": _logits(), "labels": _labels()}),
    case("chapters.math_losses.binary_cross_entropy_with_logits", "targets", "out of range", T([0.0, 2.0]), V, r"\[0, 1\]",
         lambda: {"logits": torch.zeros(2)}, shows="2.0"),
    case("chapters.math_losses.softmax_cross_entropy_gradient", "labels", "wrong dtype", torch.zeros(4), TE, r"integer class",
         lambda: {"logits": _logits()}),
    case("chapters.math_losses.l2_sp_penalty", "reference", "empty", {}, V, r"at least one",
         lambda: {"parameters": {"w": torch.zeros(2)}, "strength": 0.1}),
    case("chapters.math_losses.PenalisedLoss", "names", "unknown name", ["fc.weight"], V, r"unknown parameter names",
         lambda: {"model": _net(), "strength": 0.1}),
    # ---- chapters.math_backprop ----
    case("chapters.math_backprop.two_layer_forward", "weights", "mismatch", {"W1": torch.zeros(4, 5)}, V, r"'W1', 'b1', 'W2', 'b2'",
         lambda: {"inputs": torch.zeros(2, 4), "labels": T([0, 1])}, shows="b1"),
    case("chapters.math_backprop.two_layer_backward", "cache", "wrong type", {"inputs": 1}, TE, r"TwoLayerCache",
         lambda: {"weights": _two_layer_weights()}),
    # ---- chapters.math_optim ----
    case("chapters.math_optim.gradient_descent_step", "gradients", "mismatch", [torch.zeros(2)], V, r"parameters .* gradients",
         lambda: {"parameters": _params(), "learning_rate": 0.1}, shows="1"),
    case("chapters.math_optim.gradient_descent_step", "learning_rate", "NaN", NAN, V, r"positive|finite",
         lambda: {"parameters": _params(), "gradients": _params()}),
    case("chapters.math_optim.sgd_momentum_step", "momentum", "out of range", 1.0, V, r"\[0, 1\)",
         lambda: {"parameters": _params(), "gradients": _params(), "buffers": None, "learning_rate": 0.1}),
    case("chapters.math_optim.init_adamw_state", "parameters", "wrong type", torch.zeros(2), TE, r"a list"),
    case("chapters.math_optim.adamw_step", "betas", "out of range", (0.9, 1.0), V, r"\[0, 1\)",
         lambda: (lambda p: {"parameters": p, "gradients": _params(), "learning_rate": 0.1,
                             "state": importlib.import_module("tlcourse.chapters.math_optim").init_adamw_state(p)})(_params())),
    case("chapters.math_optim.gradient_norms", "depth", "out of range", 0, V, r"at least 1|positive int", lambda: {"model": _net()}),
    # ---- chapters.bert (helper E's file: only what it checks today) ----
    case("chapters.bert.load_sentiment_splits", "max_train", "out of range", 0, V, r"positive int",
         lambda: {"profile": _profile(), "max_validation": 4, "max_test": 4}),
    case("chapters.bert.best_record", "history", "None", None, TE, r"History"),
    case("chapters.vgg16.classifier_learning_rate_groups", "loaded", "None", None, TE, r"LoadedImageModel",
         lambda: {"lowest": 1e-4, "highest": 1e-2}),
    case("footprint.checkpoint_bytes", "model", "None", None, TE, r"nn\.Module"),
    case("chapters.bert.fine_tune", "warmup_fraction", "out of range", 1.5, V, r"\[0, 1\]",
         lambda: {"model": _net(), "train_loader": _loader(), "validation_loader": _loader(), "learning_rate": 0.1, "num_epochs": 1}),
    case("chapters.bert.tfidf_logistic_regression", "train_texts", "wrong type", "good film", TE, r"list of strings",
         lambda: {"train_labels": [1], "eval_texts": ["x"]}, names="texts"),
    case("chapters.bert.train_linear_probe", "learning_rate", "NaN", NAN, V, r"finite number",
         lambda: {"head": nn.Linear(4, 2), "train_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])),
                  "validation_set": torch.utils.data.TensorDataset(torch.zeros(2, 4), T([0, 1])), "num_epochs": 1,
                  "batch_size": 2}),
    case("chapters.bert.train_classifier", "method", "unknown name", "adapter", V, r"one of",
         lambda: {"source": "unused", "train_data": None, "validation_loader": None, "config": _chapter_settings("bert"),
                  "learning_rate": 0.1, "seed": 0, "collate_fn": None}),
    case("chapters.bert.mistakes_table", "labels", "mismatch", T([0, 1, 1]), V, r"lengths differ",
         lambda: {"texts": ["a", "b"], "logits": torch.zeros(2, 2)}, shows="3 labels"),
    # ---- chapters.peft ----
    case("chapters.peft.build_classifier", "method", "unknown name", "adapter", V, r"one of", lambda: {"source": "unused"}),
    case("chapters.peft.train_steps", "num_steps", "out of range", 0, V, r"positive int",
         lambda: {"model": _net(), "loader": _loader(), "learning_rate": 0.1}),
    case("chapters.peft.encoder_retrieval_accuracy", "encoder", "None", None, TE, r"nn\.Module",
         lambda: {"loader": [], "films": [0, 1], "labels": [0, 1]}, names="model"),
    case("chapters.peft.plot_forgetting_tradeoff", "points", "empty", [], V, r"nothing to plot", lambda: {"pretrained_source": 0.5}),
    case("chapters.peft.load_film_splits", "config", "None", None, TE, r"PeftSettings"),
    # ---- chapters.vgg16 (helper E's file: only what it checks today) ----
    case("chapters.vgg16.fine_tune", "strategy", "unknown name", "adapter", V, r"one of",
         lambda: {"loaded": None, "train_loader": None, "features": None, "config": _chapter_settings("vgg16"), "seed": 0}),
]

# Public callables with no input to validate, with the reason. Everything else needs a row in CASES.
EXEMPT = {
    # no arguments
    "assets.cache_dir": "no arguments", "data.load_mnist_5k": "no arguments", "data.load_digits_images": "no arguments",
    "cli.doctor": "no arguments", "distributed.is_distributed": "no arguments", "distributed.rank": "no arguments",
    "distributed.world_size": "no arguments", "distributed.is_main_process": "no arguments",
    "runtime.capture_rng_state": "no arguments", "integrity.unverified_cifar10_class": "no arguments",
    # accepts anything by design
    "checks.describe": "describes any value, None included",
    # records the package builds for its own results; users read them, never build them
    "assets.Asset": "a registry entry written in assets.py", "fusion.GreedySoupResult": "greedy_soup's result",
    "metrics.PairedDifference": "paired_difference's result", "models.LoadedImageModel": "load_image_model's result",
    "precision.Precision": "a type alias (Literal['bf16', 'fp16', 'fp32'])",
    "chapters.concepts.TransferSplits": "load_transfer_splits' result", "chapters.fusion.TargetTask": "load_target_task's result",
    "chapters.math_backprop.TwoLayerCache": "two_layer_forward's result", "chapters.math_optim.AdamWState": "init_adamw_state's result",
    "chapters.bert.SentimentSplits": "load_sentiment_splits' result", "chapters.peft.FilmSplits": "load_film_splits' result",
    # settings rows written in each chapter's SETTINGS table, read through settings_for(SETTINGS, profile); their
    # __post_init__ checks are tested in tests/chapters/
    "chapters.concepts.ConceptsSettings": "a SETTINGS row", "chapters.fusion.FusionSettings": "a SETTINGS row",
    "chapters.math_losses.MathSettings": "a SETTINGS row", "chapters.bert.BertSettings": "a SETTINGS row",
    "chapters.peft.PeftSettings": "a SETTINGS row", "chapters.vgg16.VGG16Settings": "a SETTINGS row",
    # type annotations, not functions
    "fusion.StateDict": "a type alias", "train.Batch": "a type alias", "train.LossFunction": "a Protocol",
    "train.Metric": "a Protocol", "chapters.math_optim.Tensors": "a type alias",
}


def public_callables() -> list[str]:
    """``module.name`` of every public callable of ``tlcourse/*.py`` and ``tlcourse/chapters/*.py``."""
    names = []
    for package, prefix in ((tlcourse, ""), (tlcourse.chapters, "chapters.")):
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            public = getattr(module, "__all__", None) or [
                n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
            for name in public:
                target = getattr(module, name)
                if callable(target) and not (inspect.isclass(target) and issubclass(target, BaseException)):
                    names.append(f"{prefix}{info.name}.{name}")
    return names


def run_case(bad: Case) -> BaseException | None:
    """Call ``bad.function`` with the bad value, offline, in a temporary folder; return what it raised."""
    import contextlib
    import io
    import os
    import tempfile
    from unittest import mock

    arguments = {**bad.valid(), bad.argument: bad.value}
    target = _target(bad.function)
    offline = {"TLCOURSE_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}  # nothing may reach the network
    with tempfile.TemporaryDirectory() as folder, mock.patch.dict(os.environ, offline), \
            contextlib.chdir(folder), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:  # in a temporary folder: nothing is written into the repository
            if bad.argument == "tensors":  # gather_across_processes(*tensors)
                target(*bad.value)
            else:
                target(**arguments)
        except BaseException as error:  # noqa: BLE001 - SystemExit included: the test checks the type
            return error
    return None


@pytest.mark.parametrize("bad", CASES, ids=lambda c: c.id)
def test_bad_input_raises_a_message_naming_argument_expectation_and_value(bad: Case) -> None:
    error = run_case(bad)
    assert error is not None, f"{bad.id}: no error: the bad value was accepted"
    assert isinstance(error, bad.raises), f"{bad.id}: raised {type(error).__name__}: {error}"
    if bad.raises is SystemExit:  # argparse prints its own usage message
        return
    message = str(error)
    assert re.search(bad.match, message), f"{bad.id}: the message {message!r} does not state {bad.match!r}"
    named = bad.names or bad.argument
    assert re.search(rf"\b{re.escape(named)}\b", message), f"{bad.id}: the message {message!r} does not name {named}"
    shows = bad.shows if bad.shows is not None else _shown(bad.value)
    assert re.search(shows, message), f"{bad.id}: the message {message!r} does not show the value ({shows!r})"


def test_every_public_function_has_a_bad_input_case_or_an_exemption() -> None:
    covered = {c.function for c in CASES} | set(EXEMPT)
    missing = sorted(set(public_callables()) - covered)
    assert not missing, f"public functions with no row in CASES (tests/test_bad_inputs.py): {missing}"
    stale = sorted((set(EXEMPT) | {c.function for c in CASES}) - set(public_callables()))
    assert not stale, f"rows or exemptions for functions that are not public (renamed?): {stale}"


def test_readme_bad_input_section_is_rendered_from_the_cases() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    from bad_input_table import read_section, render

    assert read_section(ROOT / "README.md") == render(CASES), (
        "README.md's bad-input table differs from tests/test_bad_inputs.py's CASES: "
        "run `python tools/bad_input_table.py` and commit README.md")


# ---- garbage sweep: every library function, every required argument at once ---------------------
SWEEP_MODULES = ["checks", "checkpoint", "metrics", "fusion", "ensembles", "transfer", "batchnorm", "train", "text", "runtime",
                 "profiles", "optimization", "data", "images", "plotting", "history", "claims", "assets", "integrity"]
BAD_VALUES = {"None": None, "a string": "abc", "an empty list": [], "NaN": math.nan, "-1": -1,
              "a matrix": torch.zeros(2, 3)}
# Python's and torch's own wording: it names no argument of ours.
RAW_MESSAGES = ("object has no attribute", "Boolean value of Tensor", "not subscriptable", "is not iterable",
                "unsupported operand", "object of type", "Could not infer dtype", "argument must be")
SWEEP_LEFT_OUT = {
    "data.load_cifar10": "reads the disk first: garbage arguments meet AssetUnavailableError (a named error)",
}


def _sweep_callables() -> list[str]:
    names = []
    for name in public_callables():
        if name.split(".")[0] not in SWEEP_MODULES or name in SWEEP_LEFT_OUT:
            continue
        try:
            parameters = inspect.signature(_target(name)).parameters.values()
        except (TypeError, ValueError):
            continue
        if any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters):
            names.append(name)
    return names


@pytest.mark.parametrize("qualified_name", _sweep_callables())
def test_garbage_in_gives_a_named_error(qualified_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    target = _target(qualified_name)
    required = [p for p in inspect.signature(target).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for label, value in BAD_VALUES.items():
        try:
            target(*[value] * len(required))
        except (TypeError, ValueError) as error:
            raw = [pattern for pattern in RAW_MESSAGES if pattern in str(error)]
            assert not raw, f"{qualified_name} given {label}: Python's own message {str(error)!r}"
        except Exception as error:  # noqa: BLE001 - the point is to catch what should not escape
            pytest.fail(f"{qualified_name} given {label} raised {type(error).__name__}: {error}")
