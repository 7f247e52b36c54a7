"""The package's doors, given bad input, fail with a named error, not a raw Python or torch error.

A door is where a user's input enters: the loaders, the model builders, ``fit``, ``evaluate``,
``predict``, checkpoint load and save, fusion, LoRA, the command line and the profile. Internal
helpers trust their caller and are not tested here. For the doors of this file's own modules
(``train``, ``models``, ``checkpoint``) the message is matched in full: argument, expectation and
value. For the others the match is on the argument's name, so their wording may change.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse import cli, data, fusion, lora, models, profiles
from tlcourse.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, save_state_dict
from tlcourse.train import evaluate, fit, predict


def _model() -> nn.Module:
    return nn.Linear(4, 3)


def _loader() -> list:
    return [(torch.zeros(2, 4), torch.tensor([0, 1]))]


def _fit(**changes):
    model = changes.pop("model", None) or _model()
    arguments = {"train_loader": _loader(), "optimizer": torch.optim.SGD(model.parameters(), lr=0.1),
                 "num_epochs": 1, "progress": False, **changes}
    return fit(model, **arguments)


def _profile():
    return profiles.get_profile("smoke")


# (call, error, message): the message names the argument, states the expectation and shows the value.
OWN_DOORS = {
    "fit num_epochs": (lambda: _fit(num_epochs=0), ValueError, r"num_epochs must be a positive int, got 0"),
    "fit model": (lambda: fit(None, _loader(), None, num_epochs=1), TypeError, r"model must be an nn\.Module, got NoneType"),
    "fit optimizer": (lambda: _fit(optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)), ValueError,
                      r"optimizer holds 2 parameter\(s\) that are not in the model"),
    "fit train_loader None": (lambda: _fit(train_loader=None), TypeError,
                              r"train_loader must be an iterable of batches .*got NoneType None"),
    "fit train_loader empty": (lambda: _fit(train_loader=[]), ValueError, r"train_loader is empty: expected at least one batch"),
    "fit labels": (lambda: _fit(train_loader=[(torch.zeros(2, 4), torch.tensor([0, 7]))]), ValueError,
                   r"labels must be in \[0, 2\] for a model with 3 outputs; got labels from 0 to 7"),
    "fit label dtype": (lambda: _fit(train_loader=[(torch.zeros(2, 4), torch.tensor([0.0, 1.0]))]), TypeError,
                        r"expected integer class labels, got dtype torch\.float32"),
    "fit batch": (lambda: _fit(train_loader=[{"x": torch.zeros(2, 4)}]), ValueError, r"needs a 'labels' entry; got keys \['x'\]"),
    "fit max_grad_norm": (lambda: _fit(max_grad_norm=-1.0), ValueError, r"max_grad_norm must be positive or None, got -1\.0"),
    "fit max_steps_per_epoch": (lambda: _fit(max_steps_per_epoch=0), ValueError, r"max_steps_per_epoch must be a positive int, got 0"),
    "fit mixed_precision": (lambda: _fit(mixed_precision="fp8"), ValueError,
                            r"mixed_precision must be a bool or one of \['bf16', 'fp16', 'fp32'\], got 'fp8'"),
    "fit device": (lambda: _fit(device="tpu"), ValueError, r"\bdevice\b.*'tpu'"),  # checks.py's wording
    "predict device": (lambda: predict(_model(), _loader(), device=3), TypeError, r"\bdevice\b.*int 3"),
    "fit metrics": (lambda: _fit(val_loader=_loader(), metrics={"f1": 3}), TypeError,
                    r"metrics\['f1'\] must be a callable metric\(logits, targets\), got int 3"),
    "fit resume": (lambda: _fit(resume=True), ValueError, r"resume=True needs a checkpoint_path"),
    "evaluate metrics": (lambda: evaluate(_model(), _loader(), metrics={"f1": 3}), TypeError,
                         r"metrics\['f1'\] must be a callable metric\(logits, targets\), got int 3"),
    "evaluate targets": (lambda: evaluate(_model(), [(torch.zeros(2, 4), torch.tensor([[0], [1]]))]), ValueError,
                         r"expected targets of shape \(2,\), got \(2, 1\)"),
    "predict loader": (lambda: predict(_model(), None), TypeError,
                       r"loader must be an iterable of batches \(a DataLoader or a list\), got NoneType None"),
    "predict model": (lambda: predict("model", _loader()), TypeError, r"model must be an nn\.Module, got str 'model'"),
    "predict empty": (lambda: predict(_model(), []), ValueError, r"loader yielded no batches: expected at least one"),
    "save_checkpoint state": (lambda: save_checkpoint("unused.safetensors", [1]), TypeError,
                              r"state must be a mapping .*got list \[1\]"),
    "save_checkpoint object": (lambda: save_checkpoint("unused.safetensors", {"f": object()}), TypeError,
                               r"state: cannot store object at 'f'"),
    "save_checkpoint clash": (lambda: save_checkpoint("unused.safetensors", {"a.b": torch.ones(1), "a": {"b": torch.ones(1)}}),
                              ValueError, r"state: two entries are both stored under the key 'a\.b'"),
    "save_checkpoint NaN": (lambda: save_checkpoint("unused.safetensors", {"w": torch.tensor([math.nan])}), CheckpointError,
                            r"refusing to write unused\.safetensors: 1 tensor\(s\) hold NaN or infinite values, e\.g\. \['w'\]"),
    "save_state_dict value": (lambda: save_state_dict({"w": 1.0}, "unused.safetensors"), TypeError,
                              r"state_dict\['w'\] is a float, expected a tensor"),
    "load_checkpoint path": (lambda: load_checkpoint("no/such.safetensors"), CheckpointError,
                             r"checkpoint file no/such\.safetensors does not exist"),
    "load_checkpoint None": (lambda: load_checkpoint(None), TypeError, r"path must be a file path .*got NoneType None"),
    "build_vgg16 num_classes": (lambda: models.build_vgg16(0, pretrained=False), ValueError,
                                r"num_classes must be a positive int, got 0"),
    "load_image_model num_classes": (lambda: models.load_image_model(_profile(), None),
                                     ValueError, r"num_classes must be a positive int, got None"),
    "text_model_source asset_name": (lambda: models.text_model_source("gpt2", _profile()),
                                     ValueError, r"asset_name must be a text model, 'bert-base-uncased' or 'minilm-l6', got 'gpt2'"),
    "load_text_classifier num_labels": (lambda: models.load_text_classifier("unused", 1),
                                        ValueError, r"num_labels must be an int >= 2, got 1"),
    "load_text_encoder source": (lambda: models.load_text_encoder(None), TypeError,
                                 r"source must be a hub name or a model folder \(a str\), got NoneType None"),
    "SentenceClassifier pooling": (lambda: models.SentenceClassifier(_model(), 2, pooling="max"),
                                   ValueError, r"pooling must be one of \('cls', 'mean', 'pooler'\), got 'max'"),
}


@pytest.mark.parametrize("door", OWN_DOORS)
def test_own_door_names_argument_expectation_and_value(door, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing is written into the repository
    call, error, message = OWN_DOORS[door]
    with pytest.raises(error, match=message):
        call()
    assert not list(tmp_path.iterdir()), "a refused save wrote a file"


# (call, argument): the doors of other modules; the message must name the argument.
OTHER_DOORS = {
    "load_cifar10 train": (lambda: data.load_cifar10("yes"), "train"),
    "load_sst2 split": (lambda: data.load_sst2("test"), "split"),
    "load_rotten_tomatoes_snippets path": (lambda: data.load_rotten_tomatoes_snippets("/no/such/file.csv.bz2"), "path"),
    "save_sst2 splits": (lambda: data.save_sst2([("a", 1)]), "splits"),
    "make_loader batch_size": (lambda: data.make_loader(TensorDataset(torch.zeros(3, 1)), 0, shuffle=False), "batch_size"),
    "make_loader dataset": (lambda: data.make_loader(TensorDataset(torch.zeros(0, 1)), 2, shuffle=False), "dataset"),
    "interpolate alpha": (lambda: fusion.interpolate({"w": torch.zeros(2)}, {"w": torch.ones(2)}, 1.5), "alpha"),
    "interpolate finetuned": (lambda: fusion.interpolate({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5), "finetuned"),
    "average_state_dicts weights": (lambda: fusion.average_state_dicts([{"w": torch.zeros(2)}] * 2, [math.nan, 1.0]),
                                    "weights"),
    "average_state_dicts state_dicts": (lambda: fusion.average_state_dicts([]), "state_dicts"),
    "greedy_soup evaluate_fn": (lambda: fusion.greedy_soup([{"w": torch.zeros(2)}], lambda state: math.nan), "evaluate_fn"),
    "LoRALinear rank": (lambda: lora.LoRALinear(nn.Linear(4, 4), rank=0, alpha=1.0), "rank"),
    "LoRALinear base": (lambda: lora.LoRALinear(nn.Conv1d(1, 1, 1), rank=2, alpha=1.0), "base"),
    "add_lora target_modules": (lambda: lora.add_lora(_model(), ["query"], rank=2, alpha=1.0), "target_modules"),
    "get_profile name": (lambda: profiles.get_profile("fast"), "name"),
    "settings_for table": (lambda: profiles.settings_for({"gpu": 1}, _profile()), "table|profile"),
    "cli fetch name": (lambda: cli.fetch("vgg19"), "name|asset"),
}


@pytest.mark.parametrize("door", OTHER_DOORS)
def test_other_door_names_the_argument(door, tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")  # nothing may reach the network
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    call, argument = OTHER_DOORS[door]
    with pytest.raises((TypeError, ValueError), match=rf"\b({argument})\b"):
        call()


def test_the_command_line_refuses_an_unknown_command(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["launch"])
    assert exited.value.code != 0 and "launch" in capsys.readouterr().err
