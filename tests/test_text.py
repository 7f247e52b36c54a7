"""Tests for tlcourse.text on a tiny BERT written to a temporary folder (no network)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tlcourse.data import make_loader
from tlcourse.models import load_text_classifier, load_text_encoder
from tlcourse.runtime import seed_everything
from tlcourse.text import (
    LengthGroupedBatchSampler,
    PaddingCollator,
    SentenceClassifier,
    TextClassificationDataset,
    accuracy_standard_error,
    encode,
    fine_tune,
    layerwise_lr_groups,
    length_grouped_loader,
    linear_warmup_schedule,
    most_confident_mistakes,
    padded_token_counts,
    pool_tokens,
    sentence_features,
    split_by_group,
    tfidf_logistic_regression,
    validate_texts_and_labels,
    weight_decay_groups,
)
from tlcourse.train import fit

WORDS = ["good", "great", "fine", "bad", "awful", "dull", "film", "movie", "the", "a", "very", "plot", "##s"]
POSITIVE = ["good", "great", "fine"]
NEGATIVE = ["bad", "awful", "dull"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")
    # transformers 5 takes the vocabulary as a dict (or a path) in ``vocab``
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return load_text_classifier(tiny_folder, 2)


def _examples(count: int) -> tuple[list[str], list[int]]:
    generator = torch.Generator().manual_seed(1)
    texts, labels = [], []
    for index in range(count):
        label = index % 2
        pool = POSITIVE if label else NEGATIVE
        word = pool[int(torch.randint(len(pool), (1,), generator=generator))]
        filler = " very" * int(torch.randint(3, (1,), generator=generator))
        texts.append(f"the film was{filler} {word}")
        labels.append(label)
    return texts, labels


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


def test_padded_token_counts_by_hand():
    assert padded_token_counts([3, 1, 2, 2, 5], batch_size=2, fixed_length=5) == {
        "real": 13, "dynamic": 3 * 2 + 2 * 2 + 5, "fixed": 25}
    with pytest.raises(ValueError, match="fixed_length"):
        padded_token_counts([6], batch_size=2, fixed_length=5)


def test_weight_decay_grouping_is_exactly_bias_and_layernorm(tiny):
    _, model = tiny
    decay, no_decay = weight_decay_groups(model, 0.01, learning_rate=1e-4)
    names = [n for n, _ in model.named_parameters()]
    expected = {n for n in names if n.endswith(".bias") or "LayerNorm" in n}
    assert set(no_decay["names"]) == expected
    assert set(decay["names"]) == set(names) - expected
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in (decay, no_decay)])


def test_schedule_matches_transformers():
    from transformers import get_linear_schedule_with_warmup

    def run(make):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = make(optimizer)
        values = []
        for _ in range(11):
            values.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return values

    ours = run(lambda o: linear_warmup_schedule(o, warmup_steps=3, total_steps=10))
    theirs = run(lambda o: get_linear_schedule_with_warmup(o, 3, 10))
    assert ours == pytest.approx(theirs)
    assert ours[0] == 0.0 and ours[3] == pytest.approx(0.1) and ours[10] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="warmup_steps"):
        linear_warmup_schedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 11, 10)


def test_layerwise_groups(tiny):
    _, model = tiny
    groups = layerwise_lr_groups(model, 1e-3, decay=0.5, weight_decay=0.01)
    lr_of = {name: g["lr"] for g in groups for name in g["names"]}
    assert lr_of["classifier.weight"] == pytest.approx(1e-3)
    assert lr_of["bert.encoder.layer.1.attention.self.query.weight"] == pytest.approx(0.5e-3)
    assert lr_of["bert.encoder.layer.0.output.dense.weight"] == pytest.approx(0.25e-3)
    assert lr_of["bert.embeddings.word_embeddings.weight"] == pytest.approx(0.125e-3)
    assert sum(len(g["names"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_groups(model, 1e-3, decay=0.0)
    with pytest.raises(ValueError, match="BERT-like"):
        layerwise_lr_groups(nn.Linear(2, 2), 1e-3, decay=0.9)


def test_sentence_classifier_mean_pooling_ignores_padding(tiny_folder):
    tokenizer, encoder = load_text_encoder(tiny_folder)
    model = SentenceClassifier(encoder, 2, pooling="mean").eval()
    single = tokenizer(["good film"], return_tensors="pt")
    padded = tokenizer(["good film", "the film was very very dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        alone = model(**single)
        together = model(**padded)
    assert together.shape == (2, 2)
    torch.testing.assert_close(alone[0], together[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="pooling"):
        SentenceClassifier(encoder, 2, pooling="max")


def test_tiny_model_overfits_sixteen_examples(tiny_folder):
    seed_everything(0)
    tokenizer, model = load_text_classifier(tiny_folder, 2)
    texts, labels = _examples(16)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, batch_size=8, shuffle=True, seed=0, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    eval_loader = make_loader(data, batch_size=16, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    optimizer = torch.optim.AdamW(weight_decay_groups(model, 0.01), lr=3e-3)
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


def test_split_by_group_keeps_groups_apart():
    groups = [f"movie{i % 7}" for i in range(50)]
    train, test = split_by_group(groups, (0.7, 0.3), seed=0)
    assert sorted(train + test) == list(range(50))
    assert not {groups[i] for i in train} & {groups[i] for i in test}
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_group(groups, (0.5, 0.2), seed=0)


def test_small_helpers():
    probabilities = tfidf_logistic_regression(["good film", "great film", "bad film", "awful film"] * 3,
                                              [1, 1, 0, 0] * 3, ["good", "awful"])
    assert probabilities.argmax(1).tolist() == [1, 0]
    rows = most_confident_mistakes(["a", "b", "c"], torch.tensor([[3.0, 0.0], [0.0, 1.0], [0.0, 5.0]]),
                                   torch.tensor([1, 1, 0]))
    assert [r["text"] for r in rows] == ["c", "a"]
    assert accuracy_standard_error(0.8, 2) == pytest.approx(math.sqrt(0.16 / 2))
    with pytest.raises(ValueError, match="count"):
        accuracy_standard_error(0.5, 0)


def test_fine_tune_runs_and_probe_trains_only_head(tiny_folder):
    from tlcourse.transfer import freeze

    seed_everything(0)
    tokenizer, model = load_text_classifier(tiny_folder, 2)
    freeze(model, "bert")
    before = model.bert.embeddings.word_embeddings.weight.detach().clone()
    texts, labels = _examples(8)
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, batch_size=4, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    history = fine_tune(model, loader, loader, learning_rate=1e-2, num_epochs=2, max_steps_per_epoch=1)
    assert len(history) == 2
    assert torch.equal(before, model.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="warmup_fraction"):
        fine_tune(model, loader, loader, learning_rate=1e-2, num_epochs=1, warmup_fraction=2.0)


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
    grouped = padded_token_counts(lengths, 8, 60, batches=first)["dynamic"]
    consecutive = padded_token_counts(lengths, 8, 60)["dynamic"]
    assert sum(lengths) <= grouped < consecutive
    # inside a sorted group a batch spans a narrow range of lengths, unlike consecutive examples
    def mean_range(batches):
        return sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)

    assert mean_range(first) < mean_range([range(s, min(s + 8, 203)) for s in range(0, 203, 8)]) / 2


def test_padded_token_counts_for_given_batches_by_hand():
    # batch [0, 1] pads to 5 (2 x 5), batch [2, 3] pads to 2 (2 x 2)
    assert padded_token_counts([5, 4, 1, 2], 2, 6, batches=[[0, 1], [2, 3]]) == {"real": 12, "dynamic": 14, "fixed": 24}
    assert padded_token_counts([5, 4, 1, 2], 2, 6)["dynamic"] == 10 + 4


def test_length_grouped_sampler_bad_input():
    with pytest.raises(ValueError, match="lengths is empty"):
        LengthGroupedBatchSampler([], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        LengthGroupedBatchSampler([1, 2], batch_size=0)
    with pytest.raises(ValueError, match="group_batches must be a positive int, got -1"):
        LengthGroupedBatchSampler([1, 2], batch_size=1, group_batches=-1)


def test_length_grouped_loader_trains_reproducibly(tiny_folder):
    def run():
        seed_everything(0)
        tokenizer, model = load_text_classifier(tiny_folder, 2)
        texts, labels = _examples(24)
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
    assert first_history.last["examples_per_second"] > 0


def test_fine_tune_layerwise_decay(tiny_folder):
    texts, labels = _examples(8)

    def embedding_change(decay):
        seed_everything(0)
        tokenizer, model = load_text_classifier(tiny_folder, 2)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
        loader = make_loader(data, batch_size=4, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
        fine_tune(model, loader, loader, learning_rate=1e-2, num_epochs=1, warmup_fraction=0.0,
                  layerwise_decay=decay)
        after = dict(model.named_parameters())
        return {n: (after[n] - before[n]).abs().max().item() for n in before}, model

    plain, plain_model = embedding_change(None)
    one, one_model = embedding_change(1.0)
    # decay 1 is the plain recipe: same rate everywhere, same no-decay group
    for a, b in zip(plain_model.parameters(), one_model.parameters()):
        torch.testing.assert_close(a, b)
    decayed, _ = embedding_change(0.1)
    name = "bert.embeddings.word_embeddings.weight"
    # two layers below the head plus the embeddings: the embedding rate is 1e-2 * 0.1**3;
    # Adam's step is about the rate, so the change shrinks by orders of magnitude
    assert decayed[name] < plain[name] / 20
    head = "classifier.weight"
    assert decayed[head] == pytest.approx(plain[head], rel=0.1)  # the head keeps the full rate


def test_sentence_features_match_the_encoder_and_ignore_padding(tiny_folder):
    tokenizer, encoder = load_text_encoder(tiny_folder)
    texts, labels = ["good film", "the film was very very dull", "bad"], [1, 0, 0]
    data = TextClassificationDataset(texts, labels, tokenizer, max_length=16)
    loader = make_loader(data, batch_size=3, shuffle=False, collate_fn=PaddingCollator(tokenizer.pad_token_id))
    encoder.train()
    features = sentence_features(encoder, loader, poolings=["cls", "mean", "pooler"])
    assert encoder.training  # the mode is restored
    encoder.eval()
    for index, text in enumerate(texts):  # each text alone, unpadded: the independent reference
        with torch.no_grad():
            alone = encoder(**tokenizer([text], return_tensors="pt"))
        torch.testing.assert_close(features["cls"].tensors[0][index], alone.last_hidden_state[0, 0])
        torch.testing.assert_close(features["mean"].tensors[0][index], alone.last_hidden_state[0].mean(0),
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(features["pooler"].tensors[0][index], alone.pooler_output[0],
                                   atol=1e-5, rtol=1e-4)
    assert features["mean"].tensors[1].tolist() == labels
    with pytest.raises(ValueError, match="poolings must be a non-empty list"):
        sentence_features(encoder, loader, poolings=["max"])
    with pytest.raises(ValueError, match="needs batches with 'labels'"):
        sentence_features(encoder, [{"input_ids": torch.ones(1, 2, dtype=torch.long),
                                     "attention_mask": torch.ones(1, 2, dtype=torch.long)}], poolings=["cls"])


def test_pool_tokens_by_hand():
    from types import SimpleNamespace

    hidden = torch.arange(12, dtype=torch.float32).view(2, 3, 2)  # (batch 2, 3 tokens, hidden 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    outputs = SimpleNamespace(last_hidden_state=hidden, pooler_output=None)
    torch.testing.assert_close(pool_tokens(outputs, mask, "cls"), torch.tensor([[0.0, 1.0], [6.0, 7.0]]))
    torch.testing.assert_close(pool_tokens(outputs, mask, "mean"), torch.tensor([[1.0, 2.0], [8.0, 9.0]]))
    with pytest.raises(ValueError, match="needs an encoder with a pooler"):
        pool_tokens(outputs, mask, "pooler")
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_tokens(outputs, mask, "max")
