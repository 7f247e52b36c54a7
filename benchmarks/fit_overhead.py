"""Benchmark: ``tlcourse.train.fit`` vs a bare PyTorch loop on the same data, model and seed.

Both loops train the same freshly seeded model with the same optimizer on the same seeded loader
and must end with bit-identical weights; only the time differs. Two models: a 64-256-10 MLP at
batch 64 (tiny steps, so per-step bookkeeping dominates) and a small CNN on 1x28x28 inputs. The
two loops run alternately, several times, so background load affects both sides alike. Each run is
timed by the CPU time of this process (``time.process_time``, one thread), which other jobs on a
busy machine disturb far less than wall time; the ratio of medians is the headline, the median
of the paired ratios (each repeat's two runs, adjacent in time), the ratio of the fastest runs and
the wall-time ratio are printed beside it. Writes
``benchmarks/results/fit_overhead.json``.

Usage: OMP_NUM_THREADS=1 python benchmarks/fit_overhead.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from tlcourse.data import make_loader
from tlcourse.metrics import paired_difference
from tlcourse.runtime import seed_everything
from tlcourse.train import fit

BATCH_SIZE, NUM_EPOCHS, LEARNING_RATE = 64, 2, 0.05
MLP_EXAMPLES, CNN_EXAMPLES = 8192, 2048  # 256 and 64 steps


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 14, 14)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 7, 7)
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )


def make_data(count: int, input_shape: tuple[int, ...]) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(count, *input_shape, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    return TensorDataset(inputs, labels)


def bare_loop(model: nn.Module, loader, optimizer: torch.optim.Optimizer) -> None:
    for _ in range(NUM_EPOCHS):
        model.train()
        for inputs, targets in loader:
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def with_fit(model: nn.Module, loader, optimizer: torch.optim.Optimizer) -> None:
    fit(model, loader, optimizer, num_epochs=NUM_EPOCHS, progress=False)


def run(build: Callable[[], nn.Module], data: TensorDataset,
        train: Callable[[nn.Module, object, torch.optim.Optimizer], None]) -> tuple[float, float, dict]:
    seed_everything(0)
    model = build()
    loader = make_loader(data, batch_size=BATCH_SIZE, shuffle=True, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=0.9)
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    train(model, loader, optimizer)
    return time.process_time() - cpu_started, time.perf_counter() - wall_started, model.state_dict()


def compare(name: str, build: Callable[[], nn.Module], data: TensorDataset, repeats: int) -> dict:
    run(build, data, bare_loop)  # warm-up: allocator and kernels, for both sides alike
    run(build, data, with_fit)
    bare_times, fit_times, bare_walls, fit_walls, identical = [], [], [], [], True
    for repeat in range(repeats):
        for side in ("bare", "fit") if repeat % 2 == 0 else ("fit", "bare"):  # alternate who goes first
            seconds, wall, weights = run(build, data, bare_loop if side == "bare" else with_fit)
            (bare_times if side == "bare" else fit_times).append(seconds)
            (bare_walls if side == "bare" else fit_walls).append(wall)
            if side == "bare":
                bare_weights = weights
            else:
                fit_weights = weights
        identical = identical and all(torch.equal(bare_weights[key], fit_weights[key]) for key in bare_weights)
    log_interval = paired_difference([math.log(f) for f in fit_times], [math.log(b) for b in bare_times])
    result = {
        "model": name,
        "steps": NUM_EPOCHS * len(range(0, len(data), BATCH_SIZE)),
        "bare_cpu_seconds_median": statistics.median(bare_times),
        "fit_cpu_seconds_median": statistics.median(fit_times),
        "ratio_of_medians": statistics.median(fit_times) / statistics.median(bare_times),
        "ratio_of_minimums": min(fit_times) / min(bare_times),
        "wall_ratio_of_medians": statistics.median(fit_walls) / statistics.median(bare_walls),
        # each repeat's two runs are adjacent in time, so they share the machine's state of the moment
        "median_paired_ratio": statistics.median(f / b for f, b in zip(fit_times, bare_times)),
        # the geometric mean of the paired ratios with a 95% t interval (on their logarithms: the
        # arithmetic mean of ratios is biased upward by the noise of the denominators)
        "mean_paired_ratio": math.exp(log_interval.mean), "paired_ratio_low": math.exp(log_interval.low),
        "paired_ratio_high": math.exp(log_interval.high),
        "identical_weights": identical,
    }
    print(f"{name}, {result['steps']} steps: CPU seconds (median of {repeats}) bare "
          f"{result['bare_cpu_seconds_median']:.3f}, fit {result['fit_cpu_seconds_median']:.3f}, ratio "
          f"{result['ratio_of_medians']:.3f} (median of the {repeats} paired ratios: {result['median_paired_ratio']:.3f}, "
          f"their geometric mean {result['mean_paired_ratio']:.3f} [{result['paired_ratio_low']:.3f}, "
          f"{result['paired_ratio_high']:.3f}] (95% interval); "
          f"fastest runs: {result['ratio_of_minimums']:.3f}; wall time: {result['wall_ratio_of_medians']:.3f}); "
          f"identical weights: {identical}")
    return result


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    arguments = parser.parse_args()
    torch.set_num_threads(1)  # per-step overhead is what is measured, not thread scaling
    results = [
        compare("mlp 64-256-10, batch 64", mlp, make_data(MLP_EXAMPLES, (64,)), arguments.repeats),
        compare("cnn 1x28x28, batch 64", cnn, make_data(CNN_EXAMPLES, (1, 28, 28)), arguments.repeats),
    ]
    output = Path(__file__).resolve().parent / "results" / "fit_overhead.json"
    output.parent.mkdir(exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other work on the machine
    output.write_text(json.dumps({"torch": torch.__version__, "load_average_1min": load, "repeats": arguments.repeats,
                                  "results": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
