"""A rehearsal of the ``gpu`` profile on a CPU, with synthetic canonical assets."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from tlcourse.checks import check_path


REHEARSAL_ENVIRONMENT_VARIABLE = "TLCOURSE_REHEARSAL"

_CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_WORDS = ["good", "bad", "great", "awful", "film", "movie", "the", "was", "a", "very", "not", "fun", "dull"]


def environment_for(root: str | Path) -> dict[str, str]:
    """The environment variables that point every cache at ``root`` and mark the rehearsal."""
    root = check_path("root", root).resolve()
    return {"TORCH_HOME": str(root / "torch"), "HF_HOME": str(root / "huggingface"),
            "TLCOURSE_CACHE": str(root / "tlcourse"), "HF_HUB_OFFLINE": "1", "TLCOURSE_OFFLINE": "1",
            "TLCOURSE_PROFILE": "rehearsal", REHEARSAL_ENVIRONMENT_VARIABLE: "1"}


def _write_cifar10(folder: Path, per_batch: int, generator: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = generator.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)  # rows of R, G, B planes
        labels = [int(i % 10) for i in range(per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": _CIFAR_CLASSES, "num_cases_per_batch": per_batch}, handle)


def _write_vgg16(checkpoints: Path) -> Path:
    from torchvision.models import VGG16_Weights, vgg16

    checkpoints.mkdir(parents=True, exist_ok=True)
    path = checkpoints / Path(VGG16_Weights.IMAGENET1K_V1.url).name  # the name the enum looks for
    torch.save(vgg16(weights=None).state_dict(), path)
    return path


def _write_bert(hub: Path) -> Path:
    from huggingface_hub.constants import REPO_ID_SEPARATOR
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    snapshot = hub / f"models{REPO_ID_SEPARATOR}bert-base-uncased" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + _WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz.,!'")
    (snapshot / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(snapshot / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(snapshot)
    config = BertConfig(vocab_size=len(vocabulary), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=2)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(snapshot)
    refs = snapshot.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text("0" * 40)
    return snapshot


def _write_sst2(root: Path, count: int, generator: np.random.Generator) -> None:
    from tlcourse.data import save_sst2

    def sentences(number: int) -> tuple[list[str], list[int]]:
        labels = [int(i % 2) for i in range(number)]
        texts = [" ".join(generator.choice(_WORDS, size=int(generator.integers(3, 12)))) for _ in range(number)]
        return texts, labels

    save_sst2({"train": sentences(count), "validation": sentences(count // 2)}, root=root / "sst2")


def write_synthetic_assets(root: str | Path, examples: int = 64, seed: int = 0) -> dict[str, str]:
    """Write synthetic CIFAR-10, VGG16, bert-base-uncased and SST-2 in their real formats under ``root``."""
    from tlcourse.checks import check_int

    check_int("examples", examples, minimum=10)
    root = Path(root)
    generator = np.random.default_rng(seed)
    environment = environment_for(root)
    _write_cifar10(Path(environment["TLCOURSE_CACHE"]) / "cifar10" / "cifar-10-batches-py", examples, generator)
    _write_vgg16(Path(environment["TORCH_HOME"]) / "hub" / "checkpoints")
    _write_bert(Path(environment["HF_HOME"]) / "hub")
    _write_sst2(Path(environment["TLCOURSE_CACHE"]), examples, generator)
    return environment


def _main() -> None:
    # python -m tlcourse.rehearsal FOLDER: write the assets, print the environment as shell exports
    import sys

    folder = sys.argv[1] if len(sys.argv) > 1 else "_build/rehearsal/assets"
    environment = write_synthetic_assets(Path(folder).resolve())  # absolute: kernels run elsewhere
    print("\n".join(f"export {key}={value}" for key, value in environment.items()))


if __name__ == "__main__":
    _main()
