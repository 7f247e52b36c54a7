"""Tests for tlcourse.text on a tiny BERT written to a temporary folder (no network)."""
from __future__ import annotations

import pytest
import torch

from tlcourse.data import make_loader
from tlcourse.models import load_text_classifier, load_text_encoder
from tlcourse.optimization import linear_warmup_schedule, weight_decay_groups
from tlcourse.runtime import seed_everything
from tlcourse.text import (
    LengthGroupedBatchSampler,
    PaddingCollator,
    TextClassificationDataset,
    encode,
    length_grouped_loader,
    validate_texts_and_labels,
)
from tlcourse.train import fit


def test_wordpiece_and_special_tokens(tiny):
    tokenizer, _ = tiny
    item = encode(tokenizer, ["Good films"], max_length=16)[0]
    tokens = tokenizer.convert_ids_to_tokens(item["input_ids"])
    assert tokens == ["[CLS]", "good", "film", "##s", "[SEP]"]
    assert item["attention_mask"] == [1] * 5


def test_truncation_of_long_text(tiny):
    tokenizer, _ = tiny
    long_text = " ".join(["good"] * 100)
    item = encode(tokenizer, [long_text], max_length=8)[0]
    assert len(item["input_ids"]) == 8
    assert item["input_ids"][0] == tokenizer.cls_token_id and item["input_ids"][-1] == tokenizer.sep_token_id
    with pytest.raises(ValueError, match="truncation=False"):
        encode(tokenizer, [long_text], max_length=8, truncation=False)


def test_collation_matches_tokenizer_padding(tiny):
    tokenizer, _ = tiny
    texts, labels = ["good", "the film was very very dull", "a plot"], [1, 0, 1]
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=32)
    batch = PaddingCollator(tokenizer.pad_token_id)([data[i] for i in range(3)])
    # independent reference: the tokenizer's own padding of the same texts
    reference = tokenizer(texts, padding=True, return_tensors="pt")
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (3, max(data.lengths()))
    assert torch.equal(batch["input_ids"], reference["input_ids"])
    assert torch.equal(batch["attention_mask"], reference["attention_mask"])
    assert batch["labels"].tolist() == labels
    # right padding: the shortest text ends in pad ids with mask 0
    assert batch["input_ids"][0, -1] == tokenizer.pad_token_id and batch["attention_mask"][0, -1] == 0
    left = PaddingCollator(tokenizer.pad_token_id, padding_side="left")([data[0], data[1]])
    assert left["input_ids"][0, 0] == tokenizer.pad_token_id and left["attention_mask"][0, -1] == 1
    fixed = PaddingCollator(tokenizer.pad_token_id, pad_to_length=20)([data[0]])
    assert fixed["input_ids"].shape == (1, 20)
    with pytest.raises(ValueError, match="padding_side"):
        PaddingCollator(0, padding_side="middle")


def test_tiny_model_overfits_sixteen_examples(tiny_folder, make_examples):
    seed_everything(0)
    tokenizer, model = load_text_classifier(tiny_folder, 2)
    texts, labels = make_examples(16)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, batch_size=8, shuffle=True, seed=0, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    eval_loader = make_loader(data, batch_size=16, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.01, learning_rate=3e-3))
    scheduler = linear_warmup_schedule(optimizer, warmup_steps=4, total_steps=2 * 40)
    history = fit(model, loader, optimizer, num_epochs=40, val_loader=eval_loader, scheduler=scheduler,
                  max_grad_norm=1.0, progress=False)
    assert history.last["val_accuracy"] == 1.0


def test_bad_input_raises(tiny):
    tokenizer, _ = tiny
    with pytest.raises(ValueError, match="empty"):
        TextClassificationDataset([], [], tokenizer, max_length=8)
    with pytest.raises(ValueError, match="differ in length"):
        TextClassificationDataset(["good", "bad"], [1], tokenizer, max_length=8)
    with pytest.raises(ValueError, match="outside the label set"):
        TextClassificationDataset(["good", "bad"], [1, 2], tokenizer, max_length=8)
    with pytest.raises(ValueError, match="must be a str"):
        validate_texts_and_labels(["good", 3], [1, 0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_length"):
        encode(tokenizer, ["good"], max_length=1)


def test_length_grouped_batches_cover_every_example_once_and_pad_less():
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 60, (203,), generator=generator).tolist()
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=0, group_batches=5)
    first, second = list(sampler), list(sampler)
    for batches in (first, second):
        assert len(batches) == len(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(203))
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # longest batch first (OOM shows early)
    assert first != second  # a new order every epoch
    assert list(LengthGroupedBatchSampler(lengths, 8, seed=0, group_batches=5)) == first  # but fixed by the seed
    def padded(batches):  # tokens after padding each batch to its longest member
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)

    grouped = padded(first)
    consecutive = padded([range(s, min(s + 8, 203)) for s in range(0, 203, 8)])
    assert sum(lengths) <= grouped < consecutive
    # inside a sorted group a batch spans a narrow range of lengths, unlike consecutive examples
    def mean_range(batches):
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    assert mean_range(first) < mean_range([range(s, min(s + 8, 203)) for s in range(0, 203, 8)]) / 2


def test_length_grouped_sampler_bad_input():
    with pytest.raises(ValueError, match="lengths is empty"):
        LengthGroupedBatchSampler([], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        LengthGroupedBatchSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="group_batches must be a positive int, got -1"):
        LengthGroupedBatchSampler([1, 2], batch_size=1, group_batches=-1)


def test_length_grouped_loader_trains_reproducibly(tiny_folder, make_examples):
    def run():
        seed_everything(0)
        tokenizer, model = load_text_classifier(tiny_folder, 2)
        texts, labels = make_examples(24)
        data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
        loader = length_grouped_loader(data, 4, seed=3, collate_fn=PaddingCollator(tokenizer.pad_token_id),
                                       group_batches=2)
        assert loader.generator is loader.batch_sampler.generator  # fit checkpoints the batch order
        history = fit(model, loader, torch.optim.AdamW(model.parameters(), 1e-2), num_epochs=2, progress=False)
        return model, history

    (first, first_history), (second, second_history) = run(), run()
    assert first_history["train_loss"] == second_history["train_loss"]
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    # throughput counts the 24 training examples of the epoch over no more than the epoch's time
    last = first_history.last
    assert last["examples_per_second"] * last["seconds"] >= 24 * 0.99


def test_a_single_string_is_not_read_as_a_list_of_characters() -> None:
    from tlcourse.text import validate_texts_and_labels

    with pytest.raises(TypeError, match=r"texts must be a list of strings, got a single string 'a fine film'; wrap it"):
        validate_texts_and_labels("a fine film", None)
    with pytest.raises(TypeError, match="got a single string"):
        validate_texts_and_labels("ab", [0, 1])


@pytest.mark.parametrize("call, error, message", [
    (lambda: validate_texts_and_labels(None, None), TypeError, "texts must be a list of strings, got None"),
    (lambda: validate_texts_and_labels(3.5, None), TypeError, "texts must be a list, one per document, got float"),
    (lambda: validate_texts_and_labels(["a"], 1), TypeError, "labels must be a list, one per document, got int"),
    (lambda: PaddingCollator(None), ValueError, "pad_token_id must be an int >= 0, got None"),
    (lambda: PaddingCollator(0, pad_to_length=0), ValueError, "pad_to_length must be a positive int, got 0"),
    (lambda: LengthGroupedBatchSampler(None, 2), TypeError, "lengths must be a list of token counts, got NoneType"),
    (lambda: length_grouped_loader([], 2), TypeError, "dataset must be a TextClassificationDataset.*got list"),
])
def test_bad_arguments_are_named(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
