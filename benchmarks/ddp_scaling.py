"""Benchmark: ``fit`` on 1 vs 2 CPU processes under ``torchrun`` (gloo), same global batch.

Both runs train the same seeded MLP on the same data with the same global batch (each of the N
processes reads batches of GLOBAL_BATCH / N through a DistributedSampler over one seeded
permutation), so they compute the same steps and must end with weights equal up to float
rounding; only the time differs. Each process uses one thread. Writes
``benchmarks/results/ddp_scaling.json``.

On the 2-core reference machine two processes can at best halve the compute per step and pay for
one gradient all-reduce per step; with other jobs on the machine the speed-up is smaller still.

Usage: python benchmarks/ddp_scaling.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from tlcourse import distributed
from tlcourse.runtime import seed_everything
from tlcourse.train import fit

GLOBAL_BATCH, NUM_EXAMPLES, NUM_EPOCHS = 128, 8192, 1
RESULTS = Path(__file__).resolve().parent / "results"


def worker(output: Path) -> None:
    """One torchrun process: train, then rank 0 saves the weights and the training seconds."""
    torch.set_num_threads(1)
    distributed.init_from_environment("cpu")
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(NUM_EXAMPLES, 256, generator=generator)
    data = TensorDataset(inputs, torch.randint(0, 10, (NUM_EXAMPLES,), generator=generator))
    sampler = DistributedSampler(data, num_replicas=distributed.world_size(), rank=distributed.rank(),
                                 shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=GLOBAL_BATCH // distributed.world_size(), sampler=sampler)
    seed_everything(0)
    model = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
    started = time.perf_counter()
    fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.01), num_epochs=NUM_EPOCHS, progress=False)
    seconds = time.perf_counter() - started
    if distributed.is_main_process():
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, output / "weights.safetensors")
        (output / "seconds.json").write_text(json.dumps(seconds))


def launch(processes: int) -> tuple[float, dict]:
    output = RESULTS / f"ddp_{processes}"
    output.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TLCOURSE_QUIET": "1",
                   "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                    __file__, "--worker", str(output)], env=environment, check=True)
    return json.loads((output / "seconds.json").read_text()), load_file(output / "weights.safetensors")


def main() -> dict:
    one_seconds, one_weights = launch(1)
    two_seconds, two_weights = launch(2)
    difference = max(float((one_weights[k] - two_weights[k]).abs().max()) for k in one_weights)
    result = {
        "global_batch": GLOBAL_BATCH,
        "steps": NUM_EPOCHS * NUM_EXAMPLES // GLOBAL_BATCH,
        "one_process_seconds": one_seconds,
        "two_process_seconds": two_seconds,
        "speed_up": one_seconds / two_seconds,
        "largest_weight_difference": difference,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(f"fit, {result['steps']} steps of a global batch of {GLOBAL_BATCH}: 1 process {one_seconds:.2f} s, "
          f"2 processes {two_seconds:.2f} s, speed-up {result['speed_up']:.2f}x; largest weight difference "
          f"{difference:.1e}")
    (RESULTS / "ddp_scaling.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]))
    else:
        main()
