from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tlcourse.checkpoint import load_checkpoint
from tlcourse.data import make_loader
from tlcourse.runtime import seed_everything
from tlcourse.train import NonFiniteLossError, evaluate, fit, predict


def image_data(count: int = 48) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 1, 8, 8, generator=generator)
    labels = (images.mean(dim=(1, 2, 3)) > 0).long()  # a learnable rule
    return TensorDataset(images, labels)


def image_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.2), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


class TextData(Dataset):
    """Dict examples as a tokenizer makes them."""

    def __init__(self, count: int = 32):
        generator = torch.Generator().manual_seed(1)
        self.ids = torch.randint(1, 20, (count, 6), generator=generator)
        self.labels = (self.ids[:, 0] > 10).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "attention_mask": torch.ones(6, dtype=torch.long),
                "labels": self.labels[index]}


class TextModel(nn.Module):
    """Returns an object with .logits, like a Hugging Face model."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(8, 2)

    def forward(self, input_ids, attention_mask):
        hidden = self.embedding(input_ids) * attention_mask.unsqueeze(-1)  # (B, T, 8)
        return SimpleNamespace(logits=self.head(self.dropout(hidden.mean(dim=1))))


def train_once(kind: str, global_seed: int = 0, **kwargs):
    seed_everything(global_seed)
    model = image_model() if kind == "image" else TextModel()
    data = image_data() if kind == "image" else TextData()
    loader = make_loader(data, batch_size=8, shuffle=True, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    history = fit(model, loader, optimizer, num_epochs=3, scheduler=scheduler, val_loader=loader,
                  progress=False, **kwargs)
    return model, history


@pytest.mark.parametrize("kind", ["image", "text"])
def test_same_seed_gives_identical_weights_and_metrics(kind):
    first_model, first = train_once(kind)
    second_model, second = train_once(kind)
    for a, b in zip(first.records, second.records):
        timing = ("seconds", "examples_per_second")
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    for (name, a), b in zip(first_model.state_dict().items(), second_model.state_dict().values()):
        assert torch.equal(a, b), name


def test_throughput_is_training_examples_over_training_seconds(monkeypatch):
    # A clock that advances one second per reading: the epoch starts at 0, training ends at 1 and the
    # epoch (with validation) at 2, so 24 examples in one training second are 24 examples per second.
    class Clock:
        now = 0.0

        def perf_counter(self) -> float:
            self.now += 1.0
            return self.now

    monkeypatch.setattr("tlcourse.train.time", Clock())
    model = nn.Linear(2, 2)
    data = TensorDataset(torch.randn(24, 2), torch.zeros(24, dtype=torch.long))
    history = fit(model, make_loader(data, 8, shuffle=False), torch.optim.SGD(model.parameters(), lr=0.1),
                  num_epochs=1, val_loader=make_loader(data, 8, shuffle=False), progress=False)
    assert history.last["examples_per_second"] == 24.0 and history.last["seconds"] == 2.0


def test_fit_learns_and_records_history():
    _, history = train_once("image")
    assert len(history) == 3 and history["epoch"] == [1, 2, 3]
    assert history.last["train_loss"] < history.records[0]["train_loss"]
    assert set(history.last) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds",
                                  "examples_per_second"}


@pytest.mark.parametrize("kind", ["image", "text"])
def test_interrupted_run_resumes_to_the_same_weights(kind, tmp_path):
    reference, reference_history = train_once(kind)
    path = tmp_path / "run.safetensors"

    def crash(epoch, step, loss):
        if epoch == 2 and step == 3:
            raise KeyboardInterrupt("session died")

    with pytest.raises(KeyboardInterrupt):
        train_once(kind, checkpoint_path=path, on_step=crash)
    assert load_checkpoint(path)["epoch"] == 1  # the last good checkpoint is the end of epoch 1
    # A new session: fresh objects, a different global seed; the checkpoint restores everything.
    model, history = train_once(kind, global_seed=123, checkpoint_path=path, resume=True)
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert history["train_loss"] == reference_history["train_loss"]


def _after_one_checkpointed_epoch(path):
    # a linear model trained one epoch with a checkpoint at `path`: the run the next fit resumes
    model = nn.Linear(2, 2)
    loader = make_loader(TensorDataset(torch.randn(8, 2), torch.zeros(8, dtype=torch.long)), 4, shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    fit(model, loader, optimizer, num_epochs=1, checkpoint_path=path, progress=False)
    return model, loader, optimizer


def test_nan_loss_stops_with_epoch_and_step_and_keeps_checkpoint(tmp_path):
    path = tmp_path / "run.safetensors"
    model, loader, optimizer = _after_one_checkpointed_epoch(path)

    def loss_that_explodes(logits, targets):
        return F.cross_entropy(logits, targets) * float("nan")

    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 2, step 1.*checkpoint .* is intact"):
        fit(model, loader, optimizer, num_epochs=2, loss_fn=loss_that_explodes, checkpoint_path=path,
            resume=True, progress=False)
    assert load_checkpoint(path)["epoch"] == 1


def test_bad_input_is_explained():
    model = nn.Linear(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    bad_labels = make_loader(TensorDataset(torch.randn(4, 2), torch.tensor([0, 1, 2, 3])), 4, shuffle=False)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\].*3 outputs; got labels from 0 to 3"):
        fit(model, bad_labels, optimizer, num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="train_loader is empty"):
        fit(model, [], optimizer, num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="num_epochs must be a positive int, got 0"):
        fit(model, bad_labels, optimizer, num_epochs=0)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_path"):
        fit(model, bad_labels, optimizer, num_epochs=1, resume=True)
    float_labels = [(torch.randn(2, 2), torch.tensor([0.0, 1.0]))]
    with pytest.raises(TypeError, match="expected integer class labels, got dtype torch.float32"):
        fit(model, float_labels, optimizer, num_epochs=1, progress=False)
    with pytest.raises(TypeError, match="an \\(inputs, targets\\) pair or a dict"):
        fit(model, [(torch.randn(2, 2),)], optimizer, num_epochs=1, progress=False)
    with pytest.raises(ValueError, match="needs a 'labels' entry"):
        fit(model, [{"x": torch.randn(2, 2)}], optimizer, num_epochs=1, progress=False)


def test_evaluate_and_predict_match_a_direct_computation():
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    inputs, targets = torch.randn(10, 2), torch.randint(0, 3, (10,))
    loader = make_loader(TensorDataset(inputs, targets), 4, shuffle=False)
    logits, seen = predict(model, loader)
    with torch.no_grad():
        expected = model(inputs)
    torch.testing.assert_close(logits, expected)
    assert torch.equal(seen, targets)
    result = evaluate(model, loader)
    assert result["count"] == 10
    assert result["loss"] == pytest.approx(F.cross_entropy(expected, targets).item(), rel=1e-6)
    assert result["accuracy"] == pytest.approx((expected.argmax(1) == targets).float().mean().item())
    assert model.training  # evaluate restores the mode it found


def test_gradient_clipping_bounds_the_update():
    model = nn.Linear(1, 2, bias=False)
    before = model.weight.detach().clone()
    loader = [(torch.full((1, 1), 1e6), torch.tensor([0]))]
    fit(model, loader, torch.optim.SGD(model.parameters(), lr=1.0), num_epochs=1, max_grad_norm=0.5,
        progress=False)
    assert torch.linalg.vector_norm(model.weight.detach() - before) <= 0.5 + 1e-6


def test_max_steps_per_epoch():
    steps = []
    loader = make_loader(image_data(), batch_size=4, shuffle=False)
    model = image_model()
    fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.01), num_epochs=2, max_steps_per_epoch=2,
        progress=False, on_step=lambda e, s, loss: steps.append((e, s)))
    assert steps == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_fit_keeps_frozen_batchnorm_statistics_and_updates_trainable_ones():
    from tlcourse.transfer import freeze

    seed_everything(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 4),
                          nn.BatchNorm1d(4, affine=False), nn.Linear(4, 2))
    freeze(model, ["0", "1"])  # a frozen "backbone": the linear layer and its BatchNorm
    frozen_before = model[1].running_mean.clone(), model[1].running_var.clone()
    free_before = model[4].running_mean.clone()
    data = TensorDataset(torch.randn(16, 3) * 3 + 5, torch.randint(2, (16,)))  # far from the initial statistics
    fit(model, make_loader(data, 8, shuffle=True), torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1), num_epochs=2, progress=False)
    assert torch.equal(model[1].running_mean, frozen_before[0]) and torch.equal(model[1].running_var, frozen_before[1])
    assert not torch.equal(model[4].running_mean, free_before)  # no parameters: not frozen, keeps learning
    assert model[4].training and not model[1].training


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@requires_cuda
def test_fit_on_cuda_with_autocast_learns_and_returns_cpu_predictions():
    seed_everything(0)
    model = image_model()
    loader = make_loader(image_data(), batch_size=8, shuffle=True, seed=0, pin_memory=True)
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    history = fit(model, loader, torch.optim.AdamW(model.parameters(), lr=0.01), num_epochs=3, val_loader=loader,
                  device="cuda", mixed_precision=True, progress=False)
    assert next(model.parameters()).device.type == "cuda"
    assert seen[0] in (torch.bfloat16, torch.float16)  # the forward pass ran under autocast
    assert history.last["train_loss"] < history.records[0]["train_loss"]
    logits, targets = predict(model, loader, device="cuda", mixed_precision=True)
    assert logits.device.type == "cpu" and logits.dtype == torch.float32 and targets.device.type == "cpu"
    # the loss is computed in float32 even under autocast, so it matches a float32 evaluation closely
    full = evaluate(model, loader, device="cuda")
    half = evaluate(model, loader, device="cuda", mixed_precision=True)
    assert half["loss"] == pytest.approx(full["loss"], rel=0.05)


def test_labels_out_of_range_after_the_first_step_are_explained():
    # fit checks the label range on the first step of each epoch; later, on the CPU, it checks only
    # when the loss fails, and then gives the same message.
    model = nn.Linear(2, 3)
    batches = [(torch.randn(2, 2), torch.tensor([0, 1])), (torch.randn(2, 2), torch.tensor([2, 5]))]
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\].*got labels from 2 to 5"):
        fit(model, batches, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, progress=False)


def test_a_seeded_loader_gives_fit_the_order_it_gives_a_plain_loop():
    # tqdm.auto(loader) would open a second iterator, draw from the loader's generator and reshuffle.
    loader = make_loader(image_data(), batch_size=8, shuffle=True, seed=3)
    expected = [batch[1].tolist() for batch in make_loader(image_data(), batch_size=8, shuffle=True, seed=3)]
    seen = []
    model = image_model()
    fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.01), num_epochs=1, progress=True,
        loss_fn=lambda logits, targets: seen.append(targets.tolist()) or F.cross_entropy(logits, targets))
    assert seen == expected


def test_nan_gradient_in_the_last_step_writes_no_checkpoint(tmp_path):
    from tlcourse.checkpoint import CheckpointError

    path = tmp_path / "run.safetensors"
    model, loader, optimizer = _after_one_checkpointed_epoch(path)
    good = {k: v.clone() for k, v in model.state_dict().items()}

    def poison_gradient(epoch: int, step: int, loss: float) -> None:
        if step == 1:  # the loss stays finite; the step after it makes the weights NaN
            model.weight.register_hook(lambda grad: grad * float("nan"))

    with pytest.raises(CheckpointError, match=r"refusing to write .*run\.safetensors: \d+ tensor\(s\) hold NaN "
                                             r"or infinite values.*left as it was"):
        fit(model, loader, optimizer, num_epochs=2, checkpoint_path=path, resume=True, progress=False,
            on_step=poison_gradient)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and all(torch.equal(state["model"][k], good[k]) for k in good)


def test_no_checkpoint_is_claimed_before_one_exists(tmp_path):
    model = nn.Linear(2, 2)
    loader = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(NonFiniteLossError) as raised:
        fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, progress=False,
            loss_fn=lambda logits, targets: F.cross_entropy(logits, targets) * float("inf"),
            checkpoint_path=tmp_path / "never.safetensors")
    assert "checkpoint" not in str(raised.value)


def test_optimizer_built_before_a_head_swap_is_refused():
    model = nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model[1] = nn.Linear(4, 3)  # replace the head after building the optimizer
    loader = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"optimizer holds 2 parameter\(s\) that are not in the model.*"
                                         r"misses: \['1.weight', '1.bias'\]"):
        fit(model, loader, optimizer, num_epochs=1, progress=False)


def test_resuming_into_another_architecture_raises_checkpoint_error(tmp_path):
    from tlcourse.checkpoint import CheckpointError

    path = tmp_path / "run.safetensors"
    loader = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))]
    model = nn.Linear(2, 2)
    fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, checkpoint_path=path,
        progress=False)
    other = nn.Linear(2, 3)
    with pytest.raises(CheckpointError, match=r"weight: model \(3, 2\) vs checkpoint \(2, 2\)"):
        fit(other, loader, torch.optim.SGD(other.parameters(), lr=0.1), num_epochs=2, checkpoint_path=path,
            resume=True, progress=False)
    with pytest.raises(CheckpointError, match="optimizer state in .* does not fit this optimizer"):
        fit(model, loader, torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1),
            num_epochs=2, checkpoint_path=path, resume=True, progress=False)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_narrow_integer_labels_train_like_int64(dtype):
    data = torch.randn(8, 2)
    labels = torch.tensor([0, 1] * 4)
    results = []
    for label_dtype in (torch.int64, dtype):
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        loader = [(data[:4], labels[:4].to(label_dtype)), (data[4:], labels[4:].to(label_dtype))]
        history = fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=2,
                      val_loader=loader, progress=False)
        results.append((model.weight.detach().clone(), history["val_loss"]))
    assert torch.equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_max_steps_per_epoch_must_be_positive(value):
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=f"max_steps_per_epoch must be a positive int, got {value!r}"):
        fit(model, [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))],
            torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, max_steps_per_epoch=value)


def test_fit_rejects_non_modules_and_non_optimizers():
    model = nn.Linear(2, 2)
    loader = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(TypeError, match="model must be an nn.Module, got NoneType"):
        fit(None, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer, got list"):
        fit(model, loader, [model.weight], num_epochs=1)


def test_resuming_with_another_optimizer_type_names_both_types(tmp_path):
    # torch's load_state_dict would take SGD's hyperparameters into AdamW, then fail with KeyError: 'betas'
    from tlcourse.checkpoint import CheckpointError

    path = tmp_path / "run.safetensors"
    model, loader, _ = _after_one_checkpointed_epoch(path)
    with pytest.raises(CheckpointError, match=r"optimizer: .* an optimizer of type SGD, this optimizer is of type AdamW"):
        fit(model, loader, torch.optim.AdamW(model.parameters()), num_epochs=2, checkpoint_path=path, resume=True,
            progress=False)
    assert isinstance(CheckpointError("x"), ValueError)


def test_resuming_from_a_weights_only_file_says_so(tmp_path):
    from tlcourse.checkpoint import CheckpointError, save_state_dict

    model = nn.Linear(2, 2)
    path = save_state_dict(model.state_dict(), tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match=r"weights\.safetensors is a weights-only file"):
        fit(model, [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))], torch.optim.SGD(model.parameters(), lr=0.1),
            num_epochs=2, checkpoint_path=path, resume=True, progress=False)


def test_metrics_and_loaders_that_are_not_what_they_should_be_are_named():
    model = nn.Linear(2, 2)
    loader = [(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(TypeError, match=r"metrics\['f1'\] must be a callable metric\(logits, targets\), got int 3"):
        evaluate(model, loader, metrics={"f1": 3})
    with pytest.raises(TypeError, match=r"metrics must be a dict of name -> metric\(logits, targets\), got list"):
        fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, metrics=[len])
    with pytest.raises(TypeError, match="loader must be an iterable of batches .*got NoneType None"):
        predict(model, None)
    with pytest.raises(TypeError, match="train_loader must be an iterable of batches .*got int 3"):
        fit(model, 3, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1)
    with pytest.raises(TypeError, match="val_loader must be an iterable of batches"):
        fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, val_loader=torch.zeros(3))
