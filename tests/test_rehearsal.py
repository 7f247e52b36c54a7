"""The rehearsal's synthetic assets load through the canonical loaders, offline, as the gpu path does."""
import pytest
import torch

from tlcourse.rehearsal import REHEARSAL_ENVIRONMENT_VARIABLE, write_synthetic_assets


@pytest.fixture(scope="module")
def rehearsal_environment(tmp_path_factory):
    root = tmp_path_factory.mktemp("rehearsal")
    environment = write_synthetic_assets(root, examples=20)
    patch = pytest.MonkeyPatch()
    for key, value in environment.items():
        patch.setenv(key, value)
    yield environment
    patch.undo()


def test_every_canonical_asset_is_cached_and_resolves_without_standins(rehearsal_environment):
    from tlcourse.assets import is_cached, resolve
    from tlcourse.profiles import get_profile

    for name in ("vgg16-imagenet", "cifar10", "bert-base-uncased", "sst2"):
        assert is_cached(name), name
        assert resolve(name, get_profile("rehearsal")).name == name


def test_cifar10_is_read_by_torchvision_and_says_its_md5_check_is_skipped(rehearsal_environment, capsys):
    from tlcourse.data import load_cifar10

    data = load_cifar10(train=True)
    assert len(data) == 100 and data.classes[0] == "airplane"
    image, label = data[3]
    assert image.size == (32, 32) and label == 3
    assert "md5 check is skipped" in capsys.readouterr().out


def test_cifar10_md5_check_holds_outside_the_rehearsal(rehearsal_environment, monkeypatch):
    from tlcourse.assets import AssetUnavailableError
    from tlcourse.data import load_cifar10

    monkeypatch.delenv(REHEARSAL_ENVIRONMENT_VARIABLE)
    with pytest.raises(AssetUnavailableError, match="failed its md5 check"):
        load_cifar10(train=False)


def test_vgg16_loads_through_the_weights_enum(rehearsal_environment):
    from tlcourse.models import build_vgg16

    model = build_vgg16(10, pretrained=True)
    assert model.classifier[6].out_features == 10
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_bert_base_uncased_loads_by_its_hub_name_offline(rehearsal_environment):
    # a fresh process, as a chapter is: huggingface_hub reads HF_HOME once, when it is imported
    import os
    import subprocess
    import sys

    program = (
        "from tlcourse.models import load_text_classifier, text_model_source\n"
        "from tlcourse.profiles import get_profile\n"
        "asset, source = text_model_source('bert-base-uncased', get_profile('rehearsal'))\n"
        "tokenizer, model = load_text_classifier(source, num_labels=2)\n"
        "print(asset, source, tuple(model(**tokenizer(['the film was good'], return_tensors='pt')).logits.shape))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            env=os.environ | rehearsal_environment, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("bert-base-uncased bert-base-uncased (1, 2)")


def test_sst2_reads_from_the_books_cache(rehearsal_environment):
    from tlcourse.data import load_sst2

    texts, labels = load_sst2("train")
    assert len(texts) == 20 and set(labels) == {0, 1}


def test_too_few_examples_is_refused(tmp_path):
    with pytest.raises(ValueError, match="examples must be an int >= 10, got 3"):
        write_synthetic_assets(tmp_path, examples=3)
