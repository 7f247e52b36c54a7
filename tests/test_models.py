import pytest
import torch

from tlcourse.assets import AssetUnavailableError
from tlcourse.models import (build_vgg16, load_efficientnet_lite0, load_image_model, load_text_classifier,
                             text_model_source)
from tlcourse.profiles import get_profile


def test_smoke_image_model_is_vgg16_architecture_without_download():
    loaded = load_image_model(get_profile("smoke"), 7)
    assert loaded.asset == "none" and loaded.model.classifier[6].out_features == 7
    assert loaded.model.classifier[6].in_features == 4096


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


def test_text_model_source_per_profile(monkeypatch, capsys, tmp_path):
    name, folder = text_model_source(get_profile("cpu"))
    assert name == "minilm-l6" and folder.endswith("model")
    assert "minilm-l6 instead of bert-base-uncased" in capsys.readouterr().out  # announced in cpu
    assert text_model_source(get_profile("smoke")) == (name, folder)
    assert capsys.readouterr().out == ""  # smoke stays quiet
    # gpu: the canonical model or a clear error, never a silent stand-in
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("TLCOURSE_OFFLINE", "1")
    with pytest.raises(AssetUnavailableError, match="python -m tlcourse fetch bert-base-uncased"):
        text_model_source(get_profile("gpu"))
