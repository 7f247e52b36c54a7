import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from tlcourse import distributed
from tlcourse.checkpoint import load_checkpoint
from tlcourse.runtime import seed_everything

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "distributed_worker.py"
_spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)  # the same data, model and recipe as the torchrun processes
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def test_single_process_helpers_are_identities():
    loader = DataLoader(TensorDataset(torch.arange(6)), batch_size=2, shuffle=True)
    assert not distributed.init_from_environment("cpu")
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    assert distributed.shard_loader(loader) is loader and distributed.split_for_evaluation(loader) is loader
    assert distributed.sum_across_processes([1.0, 2.5], "cpu") == [1.0, 2.5]
    assert distributed.process_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo")
def test_two_processes_match_one_process_with_the_same_global_batch_and_resume_exactly(tmp_path):
    # Two ranks with batches of 4 (DistributedSampler: rank r reads positions r, r+2, ... of one
    # seeded permutation) against one process with batches of 8 over the same permutation: each
    # step averages the gradients of the same 8 examples, so the weights agree up to float rounding
    # (the sum over 8 examples is added up in another order).
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TLCOURSE_QUIET": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(WORKER), str(tmp_path)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1)]
    histories = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [h["world_size"] for h in histories] == [2, 2]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name  # DDP keeps the replicas identical
    for first, second in zip(*(h["records"] for h in histories)):
        assert {c: first[c] for c in METRICS} == {c: second[c] for c in METRICS}  # metrics reduced

    examples = worker.data(48, seed=0)
    sampler = DistributedSampler(examples, num_replicas=1, rank=0, shuffle=True, seed=0)  # fit calls set_epoch
    reference, history = worker.train(DataLoader(examples, batch_size=2 * worker.PER_PROCESS_BATCH, sampler=sampler))
    seed_everything(0)
    start = worker.model().state_dict()
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(ranks[0][name], value, rtol=0, atol=1e-6)
        assert not torch.allclose(value, start[name], atol=1e-3), name  # it did train
    for ours, theirs in zip(histories[0]["records"], history.records):
        assert {c: ours[c] for c in METRICS} == pytest.approx({c: theirs[c] for c in METRICS}, abs=1e-6)
    assert load_checkpoint(tmp_path / "run.safetensors")["epoch"] == 3  # written by rank 0
    for rank in (0, 1):  # killed in epoch 2 and resumed: the weights of the uninterrupted run
        resumed = load_file(tmp_path / f"resumed{rank}.safetensors")
        for name, value in ranks[0].items():
            assert torch.equal(resumed[name], value), (rank, name)
