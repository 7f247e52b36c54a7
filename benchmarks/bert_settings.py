"""The BERT chapter's design runs, behind the table of book/settings.md: validation accuracy only.

MiniLM-L6 fully fine-tuned with mean pooling, on the chapter's seed-0 split by film, by the chapter's
recipe: AdamW in two groups (no decay on biases and LayerNorm), linear warmup over the first 10 % of
the steps then linear decay, clipping at 1.0, length-grouped batches, trained by ``tlcourse.train.fit``.
Each setup varies the snippets and epochs, the batch, the word embeddings (trained or frozen), the
peak learning rate and an optional rate of the head's own. The score is the validation accuracy at
the best epoch; the test split is never loaded. CPU seconds are the process time of ``fit`` (training
and validation) in one thread. Writes benchmarks/results/bert_settings.csv.

Usage: OMP_NUM_THREADS=1 python benchmarks/bert_settings.py
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from peak_memory import processor_name  # benchmarks/peak_memory.py, beside this script
from tlcourse.chapters.bert import SETTINGS, load_sentiment_splits
from tlcourse.data import make_loader
from tlcourse.models import SentenceClassifier, load_text_encoder, text_model_source
from tlcourse.profiles import get_profile
from tlcourse.runtime import seed_everything
from tlcourse.text import LengthGroupedBatchSampler
from tlcourse.train import fit

# (snippets, epochs, batch, word embeddings frozen, peak learning rate, head's own rate or None, seeds)
SETUPS = [
    (768, 2, 32, False, 1e-4, None, (0,)),
    (768, 2, 32, True, 1e-4, None, (0,)),
    (768, 2, 32, True, 2e-4, None, (0,)),
    (768, 2, 32, True, 1e-4, 3e-3, (0,)),
    (768, 2, 32, True, 1e-4, 1e-2, (0,)),
    (1536, 1, 32, True, 1e-4, None, (0, 1)),
    (1536, 1, 32, True, 2e-4, None, (0, 1)),
    (1536, 1, 16, True, 1e-4, None, (0,)),
]
NO_DECAY = ["bias", "LayerNorm.weight"]


def tokenise(tokenizer, texts: list[str], labels: list[int], max_length: int) -> list[dict]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    return [{**{key: encoded[key][i] for key in encoded}, "labels": label} for i, label in enumerate(labels)]


def adamw_groups(model: torch.nn.Module, rate: float, head_rate: float | None) -> list[dict]:
    """Trainable parameters in groups: no decay on biases and LayerNorm; ``classifier.*`` at ``head_rate`` if set."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    head = [(name, p) for name, p in trainable if name.startswith("classifier.")]
    body = [(name, p) for name, p in trainable if not name.startswith("classifier.")]
    parts = [(trainable, rate)] if head_rate is None else [(body, rate), (head, head_rate)]
    groups = [{"params": [p for name, p in named if any(nd in name for nd in NO_DECAY) == exempt],
               "weight_decay": 0.0 if exempt else 0.01, "lr": part_rate}
              for named, part_rate in parts for exempt in (False, True)]
    return [group for group in groups if group["params"]]


def run(source: str, data: dict, epochs: int, batch: int, frozen: bool, rate: float, head_rate: float | None,
        seed: int) -> tuple[float, float]:
    """One fine-tuning run; returns (best validation accuracy over its epochs, CPU seconds of fit)."""
    seed_everything(seed)  # the head's initial weights, dropout and the batch order
    tokenizer, encoder = load_text_encoder(source)
    model = SentenceClassifier(encoder, num_labels=2, pooling="mean")
    if frozen:
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    optimizer = torch.optim.AdamW(adamw_groups(model, rate, head_rate), fused=True)  # fused: as the chapter
    collate = DataCollatorWithPadding(tokenizer)
    sampler = LengthGroupedBatchSampler([len(item["input_ids"]) for item in data["train"]], batch, seed=seed)
    train_loader = DataLoader(data["train"], batch_sampler=sampler, collate_fn=collate, generator=sampler.generator)
    validation_loader = make_loader(data["validation"], 2 * batch, shuffle=False, collate_fn=collate)
    total_steps = epochs * len(train_loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)
    started = time.process_time()
    history = fit(model, train_loader, optimizer, num_epochs=epochs, val_loader=validation_loader,
                  scheduler=scheduler, max_grad_norm=1.0, progress=False)
    return max(record["val_accuracy"] for record in history.records), time.process_time() - started


def main() -> pd.DataFrame:
    torch.set_num_threads(1)  # the seconds are one thread's, as the page says
    profile, config = get_profile("cpu"), SETTINGS["cpu"]
    source = text_model_source(config.text_model, profile)[1]
    tokenizer, _ = load_text_encoder(source)
    rows = []
    for snippets, epochs, batch, frozen, rate, head_rate, seeds in SETUPS:
        # seed 0's split by film; a cap of 1 on the test split: it is not used here
        splits = load_sentiment_splits(profile, snippets, config.max_validation_examples, 1, seed=0)
        data = {"train": tokenise(tokenizer, splits.train_texts, splits.train_labels, config.max_length),
                "validation": tokenise(tokenizer, splits.validation_texts, splits.validation_labels, config.max_length)}
        runs = [run(source, data, epochs, batch, frozen, rate, head_rate, seed) for seed in seeds]
        steps = epochs * -(-len(data["train"]) // batch)
        rows.append({"snippets": snippets, "epochs": epochs, "batch": batch, "steps": steps,
                     "word embeddings": "frozen" if frozen else "trained", "peak learning rate": rate,
                     "head's own rate": head_rate, "seeds": " ".join(map(str, seeds)),
                     "validation snippets": len(data["validation"]),
                     "validation accuracy": round(sum(a for a, _ in runs) / len(runs), 4),
                     "validation accuracy per seed": " ".join(f"{a:.4f}" for a, _ in runs),
                     "CPU s per run": round(sum(s for _, s in runs) / len(runs), 1)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["machine"] = f"{processor_name()}, {torch.get_num_threads()} thread"
    table["torch"] = torch.__version__
    table["date"] = datetime.date.today().isoformat()
    output = Path(__file__).resolve().parent / "results" / "bert_settings.csv"
    output.parent.mkdir(exist_ok=True)
    table.to_csv(output, index=False)
    return table


if __name__ == "__main__":
    main()
