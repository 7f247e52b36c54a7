"""Shared test settings: headless plots, no progress bars, offline."""

import os

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # tests never open windows
os.environ.setdefault("TLCOURSE_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests make their own models; never touch the hub


# A tiny BERT (2 layers, 16 wide) and its WordPiece tokenizer, written with save_pretrained to a
# temporary folder and loaded back through the Auto* classes: the path bert-base-uncased takes.
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
    from tlcourse.models import load_text_classifier

    return load_text_classifier(tiny_folder, 2)


def _labelled_examples(count: int) -> tuple[list[str], list[int]]:
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


@pytest.fixture
def make_examples():
    """``make_examples(count)`` -> (texts, labels): short reviews whose label is one sentiment word."""
    return _labelled_examples
