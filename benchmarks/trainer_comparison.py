"""Benchmark: the BERT chapter's fine-tuning through ``tlcourse.fit`` vs the ``transformers`` Trainer.

Same model (MiniLM-L6, offline), same Rotten Tomatoes split by film, same hyperparameters (AdamW,
weight decay 0.01 without decay on biases and LayerNorm, linear warmup then decay, clipping at 1.0,
batch 32, the same number of steps) and the same seeds; reports test accuracy per seed, wall and CPU
time for each, and the time ratios tlcourse / Trainer. The two alternate seed by seed (who goes
first alternates too), so that a change in the machine's load falls on both. Writes
benchmarks/results/trainer_comparison.json.

Usage: python benchmarks/trainer_comparison.py [--train 512] [--epochs 2] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from tlcourse.data import load_rotten_tomatoes_snippets, make_loader, split_by_group
from tlcourse.metrics import mean_and_std
from tlcourse.models import load_text_classifier, text_model_source
from tlcourse.optimization import linear_warmup_schedule, weight_decay_groups
from tlcourse.profiles import get_profile
from tlcourse.runtime import seed_everything
from tlcourse.text import PaddingCollator, TextClassificationDataset
from tlcourse.train import evaluate, fit

MAX_LENGTH, BATCH, LEARNING_RATE, WEIGHT_DECAY, WARMUP = 64, 32, 1e-4, 0.01, 0.1


def with_tlcourse(seed: int, data: tuple, epochs: int) -> tuple[float, float, float]:
    """Fine-tune with ``fit``; return (test accuracy, wall seconds, CPU seconds)."""
    seed_everything(seed)
    tokenizer, model = load_text_classifier(text_model_source("minilm-l6", get_profile("cpu"))[1], num_labels=2)
    collate = PaddingCollator(tokenizer.pad_token_id)
    train = TextClassificationDataset(data[0], data[1], tokenizer, max_length=MAX_LENGTH)
    test = TextClassificationDataset(data[2], data[3], tokenizer, max_length=MAX_LENGTH)
    loader = make_loader(train, BATCH, shuffle=True, seed=seed, collate_fn=collate)
    steps = len(loader) * epochs
    # fused: the implementation the Trainer picks (optim='adamw_torch_fused') and the chapter uses
    optimizer = torch.optim.AdamW(weight_decay_groups(model, WEIGHT_DECAY, LEARNING_RATE), fused=True)
    scheduler = linear_warmup_schedule(optimizer, int(WARMUP * steps), steps)
    started, cpu_started = time.perf_counter(), time.process_time()
    fit(model, loader, optimizer, num_epochs=epochs, scheduler=scheduler, max_grad_norm=1.0, progress=False)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return evaluate(model, make_loader(test, 64, shuffle=False, collate_fn=collate))["accuracy"], seconds, cpu_seconds


def with_trainer(seed: int, data: tuple, epochs: int) -> tuple[float, float, float]:
    """Fine-tune with ``transformers.Trainer``; return (test accuracy, wall seconds, CPU seconds)."""
    from transformers import Trainer, TrainingArguments

    seed_everything(seed)
    tokenizer, model = load_text_classifier(text_model_source("minilm-l6", get_profile("cpu"))[1], num_labels=2)
    collate = PaddingCollator(tokenizer.pad_token_id)
    train = TextClassificationDataset(data[0], data[1], tokenizer, max_length=MAX_LENGTH)
    test = TextClassificationDataset(data[2], data[3], tokenizer, max_length=MAX_LENGTH)
    with tempfile.TemporaryDirectory() as folder:
        arguments = TrainingArguments(
            output_dir=folder, per_device_train_batch_size=BATCH, num_train_epochs=epochs,
            learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, warmup_steps=WARMUP,  # a float is a ratio in transformers 5
            lr_scheduler_type="linear", max_grad_norm=1.0, seed=seed, data_seed=seed, report_to=[],
            save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=train, data_collator=collate)
        started, cpu_started = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return evaluate(model, make_loader(test, 64, shuffle=False, collate_fn=collate))["accuracy"], seconds, cpu_seconds


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    arguments = parser.parse_args()
    texts, labels, films = load_rotten_tomatoes_snippets()
    train_part, test_part = split_by_group(films, (0.8, 0.2), seed=0)
    train_part, test_part = train_part[: arguments.train], test_part[:500]
    data = ([texts[i] for i in train_part], [labels[i] for i in train_part],
            [texts[i] for i in test_part], [labels[i] for i in test_part])
    trainers = {"tlcourse": with_tlcourse, "trainer": with_trainer}
    runs: dict = {name: [] for name in trainers}
    for position, seed in enumerate(arguments.seeds):  # the two alternate, so a change of load hits both
        for name in list(trainers)[:: 1 if position % 2 == 0 else -1]:
            runs[name].append(trainers[name](seed, data, arguments.epochs))
    results: dict = {}
    for name, done in runs.items():
        accuracy_mean, accuracy_std = mean_and_std([accuracy for accuracy, _, _ in done])
        results[name] = {"accuracy_per_seed": [accuracy for accuracy, _, _ in done], "accuracy_mean": accuracy_mean,
                         "accuracy_std": accuracy_std, "seconds": sum(seconds for _, seconds, _ in done),
                         "cpu_seconds": sum(cpu for _, _, cpu in done)}
    ours, theirs = results["tlcourse"], results["trainer"]
    results["time_ratio_tlcourse_over_trainer"] = ours["seconds"] / theirs["seconds"]
    results["cpu_time_ratio_tlcourse_over_trainer"] = ours["cpu_seconds"] / theirs["cpu_seconds"]
    results["settings"] = vars(arguments) | {"threads": torch.get_num_threads(),
                                             "load_average_1min": os.getloadavg()[0]}
    print(json.dumps(results, indent=2))
    output = Path(__file__).parent / "results" / "trainer_comparison.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
