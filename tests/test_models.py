import pytest
import torch

from tlcourse.assets import AssetUnavailableError
from tlcourse.models import (
    SentenceClassifier,
    build_vgg16,
    load_efficientnet_lite0,
    load_image_model,
    load_text_classifier,
    load_text_encoder,
    text_model_source,
)
from tlcourse.profiles import get_profile


def test_smoke_image_model_comes_from_the_registry_without_download(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # VGG16 not cached: smoke never downloads
    loaded = load_image_model(get_profile("smoke"), 7)
    assert loaded.asset == "efficientnet-lite0-imagenet" and loaded.model._fc.out_features == 7


def test_efficientnet_standin_gives_imagenet_predictions():
    model = load_efficientnet_lite0().eval()
    with torch.inference_mode():
        logits = model(torch.zeros(1, 3, 224, 224))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()
    assert load_efficientnet_lite0(5)._fc.out_features == 5


def test_corrupted_weights_file_names_the_file(tmp_path):
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(AssetUnavailableError, match=r"weights\.pth .*missing or corrupted"):
        load_efficientnet_lite0(weights_path=bad)


def test_cpu_profile_offline_announces_the_standin(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    loaded = load_image_model(get_profile("cpu"), 3)
    assert loaded.architecture == "efficientnet-lite0" and loaded.head == "_fc"
    assert "efficientnet-lite0-imagenet" in capsys.readouterr().out


def test_text_classifier_rejects_one_label():
    with pytest.raises(ValueError, match="num_labels must be an int >= 2, got 1"):
        load_text_classifier("unused", num_labels=1)


def test_vgg16_head_is_replaced_by_in_features():
    model = build_vgg16(4, pretrained=False)
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert model.classifier[6].out_features == 4


def test_text_model_source_follows_the_registry(monkeypatch, tmp_path):
    name, folder = text_model_source("minilm-l6", get_profile("cpu"))
    assert name == "minilm-l6" and folder.endswith("model")
    assert text_model_source("minilm-l6", get_profile("smoke")) == (name, folder)
    # gpu: the canonical model or a clear error, never a silent stand-in
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    with pytest.raises(AssetUnavailableError, match="python -m tlcourse fetch bert-base-uncased"):
        text_model_source("bert-base-uncased", get_profile("gpu"))
    with pytest.raises(ValueError, match="asset_name must be a text model"):
        text_model_source("vgg16-imagenet", get_profile("cpu"))


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


def test_loading_a_text_model_prints_no_progress_bar_or_report(tiny_folder, capfd):
    from transformers.utils import logging as hf_logging

    load_text_encoder(tiny_folder)
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
    assert captured.out == ""
    assert hf_logging.is_progress_bar_enabled()  # the setting is restored afterwards
