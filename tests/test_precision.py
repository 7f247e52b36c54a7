import pytest
import torch

from tlcourse import train
from tlcourse.train import choose_precision


@pytest.mark.parametrize("capability, expected", [
    ((6, 1), "fp16"),  # Pascal (P100 is 6.0, GTX 10x0 6.1)
    ((7, 0), "fp16"),  # V100
    ((7, 5), "fp16"),  # T4, Colab's free GPU: bf16 only by emulation
    ((8, 0), "bf16"),  # A100
    ((8, 6), "bf16"),  # RTX 30x0, A10
    ((8, 9), "bf16"),  # L4, RTX 40x0
    ((9, 0), "bf16"),  # H100
    ((10, 0), "bf16"),  # Blackwell: compared as a tuple, not as a string ("10.0" < "8.0")
])
def test_cuda_precision_follows_native_bf16_support_whatever_is_bf16_supported_says(monkeypatch, capability, expected):
    # On a T4 torch.cuda.is_bf16_supported() answers True (emulation); the decision must not ask it.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert choose_precision("cuda", True) == expected
    assert choose_precision("cuda", False) == "fp32"


def test_no_autocast_on_the_cpu_unless_forced():
    assert choose_precision("cpu", True) == "fp32"
    assert choose_precision(torch.device("cpu"), False) == "fp32"
    assert choose_precision("cpu", "fp16") == "fp16"  # the tests force fp16 to exercise the scaler


def test_a_precision_name_is_checked_at_the_door():
    model = torch.nn.Linear(2, 2)
    loader = [(torch.randn(2, 2), torch.tensor([0, 1]))]
    with pytest.raises(ValueError, match=r"mixed_precision must be a bool or one of \['bf16', 'fp16', 'fp32'\], got 'half'"):
        train.fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, mixed_precision="half")
    with pytest.raises(ValueError, match="mixed_precision .* got 'fp61'"):
        train.predict(model, loader, mixed_precision="fp61")


def test_the_choice_is_printed_once(monkeypatch, capsys):
    monkeypatch.setattr(train, "_ANNOUNCED", set())
    model = torch.nn.Linear(2, 2)
    loader = [(torch.randn(2, 2), torch.tensor([0, 1]))]
    for _ in range(2):
        train.fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=1, mixed_precision="fp16",
                  progress=False)
    line = "mixed precision: fp16 autocast with gradient scaling (torch.amp.GradScaler) (cpu)"
    assert capsys.readouterr().out == line + "\n"


# fit under fp16 on the CPU: the gradient-scaler path, checked against a hand-written AMP loop.
def _fp16_setup():
    from torch.utils.data import TensorDataset

    from tlcourse.data import make_loader
    from tlcourse.runtime import seed_everything

    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(24, 6, generator=generator)
    data = TensorDataset(inputs, inputs[:, :3].argmax(dim=1))
    return model, make_loader(data, batch_size=6, shuffle=True, seed=0)


def test_fit_in_fp16_scales_the_loss_like_the_reference_amp_loop():
    import torch.nn.functional as F

    from tlcourse.train import fit

    model, loader = _fp16_setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, loader, optimizer, num_epochs=2, mixed_precision="fp16", max_grad_norm=1.0, progress=False)

    reference, loader = _fp16_setup()  # the recipe of the torch.amp documentation, written out
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    for _ in range(2):
        for inputs, targets in loader:
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.cross_entropy(reference(inputs).float(), targets)
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    assert history.last["train_loss"] < history.records[0]["train_loss"]


def test_the_scaler_state_is_checkpointed_and_resumed(tmp_path):
    from tlcourse.checkpoint import load_checkpoint
    from tlcourse.train import fit

    def train(num_epochs, **kwargs):
        model, loader = _fp16_setup()
        fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), num_epochs=num_epochs,
            mixed_precision="fp16", checkpoint_path=tmp_path / "run.safetensors", progress=False, **kwargs)
        return model

    train(1)
    scaler = load_checkpoint(tmp_path / "run.safetensors")["scaler"]
    assert scaler["scale"] == 2.0 ** 16 and scaler["_growth_tracker"] == 4  # 4 good steps so far
    resumed = train(3, resume=True)
    # restored, the tracker keeps counting (12 steps); a fresh scaler would have counted 8
    assert load_checkpoint(tmp_path / "run.safetensors")["scaler"]["_growth_tracker"] == 12
    (tmp_path / "run.safetensors").unlink()
    uninterrupted = train(3)
    for name, value in uninterrupted.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
