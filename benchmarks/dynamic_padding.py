"""Benchmark: dynamic padding with length-grouped batches vs padding every batch to the maximum length.

Both runs fine-tune the same MiniLM-L6 (offline, from its wheel) on the same Rotten Tomatoes
snippets with the same seed, learning rate and number of optimiser steps; only the batching
differs. Reports training tokens per second (real tokens, padding excluded), the speed-up, the
share of padding in each, and test accuracy (which should agree within seed noise).
Writes benchmarks/results/dynamic_padding.json.

Usage: python benchmarks/dynamic_padding.py [--train 512] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tlcourse.data import load_rotten_tomatoes_snippets, make_loader, split_by_group
from tlcourse.models import load_text_classifier, text_model_source
from tlcourse.optimization import linear_warmup_schedule, weight_decay_groups
from tlcourse.profiles import get_profile
from tlcourse.runtime import seed_everything
from tlcourse.text import PaddingCollator, TextClassificationDataset, length_grouped_loader
from tlcourse.train import evaluate, fit

MAX_LENGTH, BATCH, LEARNING_RATE = 128, 32, 1e-4


def run(way: str, train_texts: list[str], train_labels: list[int], test_texts: list[str],
        test_labels: list[int], epochs: int) -> dict[str, float]:
    """Fine-tune once with ``way`` = ``"dynamic"`` or ``"max_length"`` and measure it."""
    seed_everything(0)
    _, source = text_model_source("minilm-l6", get_profile("cpu"))
    tokenizer, model = load_text_classifier(source, num_labels=2)
    train = TextClassificationDataset(train_texts, train_labels, tokenizer, max_length=MAX_LENGTH)
    test = TextClassificationDataset(test_texts, test_labels, tokenizer, max_length=MAX_LENGTH)
    if way == "dynamic":  # batches of similar lengths, each padded to its own longest text
        collate = PaddingCollator(tokenizer.pad_token_id)
        loader = length_grouped_loader(train, BATCH, seed=0, collate_fn=collate)
    else:  # the wasteful baseline: every batch padded to MAX_LENGTH
        collate = PaddingCollator(tokenizer.pad_token_id, pad_to_length=MAX_LENGTH)
        loader = make_loader(train, BATCH, shuffle=True, seed=0, collate_fn=collate)
    steps = len(loader) * epochs
    optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.01, LEARNING_RATE))
    scheduler = linear_warmup_schedule(optimizer, steps // 10, steps)
    padded = sum(int(batch["attention_mask"].numel()) for batch in loader) * epochs
    real = sum(train.lengths()) * epochs
    started = time.perf_counter()
    fit(model, loader, optimizer, num_epochs=epochs, scheduler=scheduler, max_grad_norm=1.0, progress=False)
    seconds = time.perf_counter() - started
    accuracy = evaluate(model, make_loader(test, 64, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id)))
    return {"seconds": seconds, "real_tokens_per_second": real / seconds, "padding_share": 1 - real / padded,
            "steps": steps, "test_accuracy": accuracy["accuracy"]}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=1)
    arguments = parser.parse_args()
    texts, labels, films = load_rotten_tomatoes_snippets()
    train_part, test_part = split_by_group(films, (0.8, 0.2), seed=0)
    train_part, test_part = train_part[: arguments.train], test_part[:500]
    data = ([texts[i] for i in train_part], [labels[i] for i in train_part],
            [texts[i] for i in test_part], [labels[i] for i in test_part])
    results = {way: run(way, *data, epochs=arguments.epochs) for way in ("max_length", "dynamic")}
    results["speed_up"] = results["dynamic"]["real_tokens_per_second"] / results["max_length"]["real_tokens_per_second"]
    results["settings"] = {"train": arguments.train, "epochs": arguments.epochs, "max_length": MAX_LENGTH,
                           "batch_size": BATCH, "threads": torch.get_num_threads()}
    print(json.dumps(results, indent=2))
    output = Path(__file__).parent / "results" / "dynamic_padding.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
