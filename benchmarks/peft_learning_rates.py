"""Sweep: the peak learning rates of the PEFT chapter, chosen on the validation films.

The chapter's ``_RATES`` (``tlcourse.chapters.peft``) come from this sweep, run with the chapter's
own settings for a profile (``cpu`` by default), seed 0, the chapter's splits, and its functions
(``build_classifier``, ``train_steps``): first the linear probe's rate, on the cached frozen
vectors; then, with the new head at that rate, the pretrained weights' rate of BitFit, LoRA (the
largest rank) and full fine-tuning. L2-SP uses full fine-tuning's rate. Only validation accuracy
is looked at; the test films and the retrieval set are not touched. Writes
``benchmarks/results/peft_learning_rates_<profile>_<num_steps>_steps.json``.

Usage: python benchmarks/peft_learning_rates.py [--profile cpu] [--num-steps N --max-train-examples M]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import time
from pathlib import Path

import torch

from tlcourse.chapters.peft import SETTINGS, build_classifier, load_film_splits, train_steps
from tlcourse.data import make_loader
from tlcourse.models import load_text_encoder, text_model_source
from tlcourse.pooling import sentence_features
from tlcourse.profiles import get_profile, settings_for
from tlcourse.runtime import seed_everything
from tlcourse.text import PaddingCollator, TextClassificationDataset, length_grouped_loader
from tlcourse.train import evaluate

# steps of about 3 around the usual values; a grid whose best rate is at one of its ends was extended
GRIDS = {"probe": (1e-2, 3e-2, 1e-1, 3e-1), "bitfit": (1e-3, 3e-3, 1e-2), "lora": (3e-4, 1e-3, 3e-3, 1e-2),
         "full": (1e-4, 2e-4, 5e-4)}
METHOD_OF = {"bitfit": "BitFit", "lora": "LoRA", "full": "full fine-tuning"}


def main() -> None:
    """Run the sweep and write its JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--num-steps", type=int, help="try another budget than the settings' (with --max-train-examples)")
    parser.add_argument("--max-train-examples", type=int)
    arguments = parser.parse_args()
    os.environ["TLCOURSE_PROFILE"] = arguments.profile
    profile = get_profile()
    config = settings_for(SETTINGS, profile)
    if arguments.num_steps or arguments.max_train_examples:
        config = dataclasses.replace(config, num_steps=arguments.num_steps or config.num_steps,
                                     max_train_examples=arguments.max_train_examples or config.max_train_examples)
    _, source = text_model_source(config.text_model, profile)
    splits = load_film_splits(config, seed=0)
    tokenizer, encoder = load_text_encoder(source)
    collator = PaddingCollator(tokenizer.pad_token_id)
    train = TextClassificationDataset(splits.train_texts, splits.train_labels, tokenizer, config.max_length)
    validation = TextClassificationDataset(splits.validation_texts, splits.validation_labels, tokenizer,
                                           config.max_length)
    validation_loader = make_loader(validation, 32, shuffle=False, collate_fn=collator)
    features = {name: sentence_features(encoder, make_loader(data, 32, shuffle=False, collate_fn=collator), ["mean"],
                                        device=profile.device)["mean"] for name, data in
                (("train", train), ("validation", validation))}
    rows: list[dict] = []
    for rate in GRIDS["probe"]:
        seed_everything(0)
        _, probe = build_classifier(source, "linear probe", encoder=encoder)
        train_steps(probe.classifier, make_loader(features["train"], config.batch_size, shuffle=True, seed=0),
                    num_steps=config.num_steps, learning_rate=rate, warmup_fraction=config.warmup_fraction,
                    device=profile.device)
        accuracy = evaluate(probe.classifier, make_loader(features["validation"], 256, shuffle=False),
                            device=profile.device)["accuracy"]
        rows.append({"family": "probe", "learning rate": rate, "validation accuracy": accuracy})
        print(rows[-1], flush=True)
    head_rate = max((row for row in rows if row["family"] == "probe"), key=lambda row: row["validation accuracy"])
    for family, method in METHOD_OF.items():
        for rate in GRIDS[family]:
            seed_everything(0)
            _, model = build_classifier(source, method, lora_rank=max(config.lora_ranks), lora_alpha=config.lora_alpha)
            started = time.perf_counter()
            train_steps(model, length_grouped_loader(train, config.batch_size, seed=0, collate_fn=collator),
                        num_steps=config.num_steps, learning_rate=rate,
                        head_learning_rate=head_rate["learning rate"], warmup_fraction=config.warmup_fraction,
                        device=profile.device)
            rows.append({"family": family, "learning rate": rate, "head learning rate": head_rate["learning rate"],
                         "validation accuracy": evaluate(model, validation_loader, device=profile.device)["accuracy"],
                         "seconds": time.perf_counter() - started})
            print(rows[-1], flush=True)
            del model
            gc.collect()
    chosen = {family: max((row for row in rows if row["family"] == family),
                          key=lambda row: row["validation accuracy"])["learning rate"] for family in GRIDS}
    print("chosen on validation:", chosen)
    output = Path(__file__).parent / "results" / f"peft_learning_rates_{profile.name}_{config.num_steps}_steps.json"
    output.parent.mkdir(exist_ok=True)
    output.write_text(json.dumps({"torch": torch.__version__, "profile": profile.name, "settings": repr(config),
                                  "load_average_1min": os.getloadavg()[0], "rows": rows, "chosen": chosen},
                                 indent=2))


if __name__ == "__main__":
    main()
