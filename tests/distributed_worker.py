"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=2``: one small fit, weights saved per rank.

Usage: torchrun --standalone --nproc_per_node=2 tests/distributed_worker.py OUTPUT_FOLDER
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse import distributed
from tlcourse.data import make_loader
from tlcourse.runtime import seed_everything
from tlcourse.train import fit

PER_PROCESS_BATCH = 4


def data(count: int, seed: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, 6, generator=generator)
    return TensorDataset(inputs, (inputs[:, 0] + inputs[:, 1] > 0).long())  # a learnable rule


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))  # no dropout: ranks draw alike


def train(train_loader, output: Path | None = None, name: str = "run", crash_at: tuple | None = None, **kwargs):
    seed_everything(0)
    network = model()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)

    def crash(epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == crash_at:  # every rank at the same step, as when a job is killed
            raise KeyboardInterrupt("job killed")

    history = fit(network, train_loader, optimizer, num_epochs=3, progress=False,
                  val_loader=make_loader(data(21, seed=1), batch_size=5, shuffle=False),
                  checkpoint_path=None if output is None else output / f"{name}.safetensors",
                  on_step=crash if crash_at else None, **kwargs)
    return network, history


def loader():
    return make_loader(data(48, seed=0), batch_size=PER_PROCESS_BATCH, shuffle=True, seed=0)


if __name__ == "__main__":
    output = Path(sys.argv[1])
    network, history = train(loader(), output)
    rank = distributed.rank()
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, output / f"rank{rank}.safetensors")
    try:  # the same run killed in epoch 2, then resumed from its end-of-epoch-1 checkpoint
        train(loader(), output, name="resumed", crash_at=(2, 3))
    except KeyboardInterrupt:
        pass
    resumed, _ = train(loader(), output, name="resumed", resume=True)
    save_file({k: v.contiguous() for k, v in resumed.state_dict().items()}, output / f"resumed{rank}.safetensors")
    (output / f"rank{rank}.json").write_text(json.dumps({"world_size": distributed.world_size(),
                                                          "records": history.records}))
