"""Model loading: the embedded default, by-name architectures, TorchScript, ONNX, and bad model files."""

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.errors import ExplorerError, FileError, ModelLoadError, UnknownNameError, UnsupportedError
from explorer.core.types import Needs
from explorer.models import imagenet_labels, load_model


def top1(model, rgb):
    x, _ = model.preprocess.to_input(rgb)
    return model.predict(x, 1)[0].name


def test_default_model_predicts_the_samples(model, chelsea, coffee, rocket):
    assert top1(model, chelsea) in ("Egyptian cat", "tabby", "tiger cat")
    assert top1(model, coffee) == "espresso"
    assert top1(model, rocket) in ("missile", "projectile", "space shuttle")


def test_labels_match_torchvision():
    from torchvision.models import EfficientNet_B0_Weights

    assert imagenet_labels() == EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]


def test_layer_discovery_picks_last_feature_map(model):
    names = model.layer_names()
    assert "conv_stem" in names and model.default_layer() == "bn2"
    with pytest.raises(UnknownNameError, match="valid: .*bn2"):
        model.layer("no_such_layer")


def test_unknown_model_name_lists_valid():
    with pytest.raises(UnknownNameError, match="efficientnet_lite0"):
        load_model("nonsense")
    with pytest.raises(UnknownNameError, match="resnet18"):
        load_model("torchvision:resnet_nope")


def test_torchvision_by_name_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelLoadError, match="not available offline"):
        load_model("torchvision:resnet18", allow_download=False)


def test_timm_by_name_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="--weights"):
        load_model("timm:resnet18", allow_download=False)


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=1000)
    p = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save({"state_dict": net.state_dict()}, p)
    return p


def test_torchvision_with_weights_file(resnet_weights):
    m = load_model("torchvision:resnet18", weights=resnet_weights)
    assert m.kind == "torch" and m.default_layer() == "layer4" and m.num_classes == 1000


def test_weights_of_wrong_architecture_refused(resnet_weights):
    with pytest.raises(FileError, match="do not fit"):
        load_model("torchvision:resnet34", weights=resnet_weights)


class Pickled(nn.Module):  # a module only loadable by unpickling arbitrary code
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def test_untrusted_pickle_refused_unless_allowed(tmp_path):
    p = tmp_path / "model.pt"
    torch.save(Pickled(), p)
    with pytest.raises(FileError, match="--trust-pickle"):
        load_model(str(p))
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\nd\n")
    m = load_model(str(p), trust_pickle=True, labels=labels)
    assert m.labels == ["a", "b", "c", "d"] and m.kind == "torch"


def test_torchscript_model(tmp_path, chelsea, model):
    p = tmp_path / "lite0.ts"
    torch.jit.trace(model.module.float().to(memory_format=torch.contiguous_format),
                    torch.zeros(1, 3, 224, 224)).save(str(p))
    model.module.to(memory_format=torch.channels_last)
    ts = load_model(str(p))
    assert ts.kind == "torchscript"
    assert Needs.GRADIENTS in ts.supports and Needs.LAYER not in ts.supports
    assert top1(ts, chelsea) == top1(model, chelsea)
    with pytest.raises(UnsupportedError, match="hooks"):
        ts.check_supports(Needs.LAYER, "gradcam")


@pytest.mark.parametrize("damage", ["code", "cut"])
@pytest.mark.parametrize("trust", [False, True])
def test_a_damaged_torchscript_file_says_so_with_its_reason(tmp_path, damage, trust):
    """Issue 32: TorchScript's error was dropped and the file then tried as a pickle, so a damaged TorchScript
    model read "is not a weights file" or "is not a model". Now it is named a TorchScript file that does not
    load, with TorchScript's reason: its code unparsable, or the file cut short."""
    import zipfile

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    good = tmp_path / "good.pt"
    torch.jit.script(net).save(str(good))
    bad = tmp_path / "bad.pt"
    if damage == "code":  # the same archive with its Python code replaced by text that does not parse
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if "/code/" in info.filename and info.filename.endswith(".py"):
                    data = b"def forward(self, x: Tensor) -> Tensor:\n    return ((( \n"
                dst.writestr(info, data)
    else:
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FileError) as err:
        load_model(str(bad), trust_pickle=trust)
    msg = str(err.value)
    assert "bad.pt" in msg and "is a TorchScript file that does not load" in msg, msg
    assert "Error" in msg  # TorchScript's own reason, by its exception's name at least


def test_onnx_model_is_a_black_box(tmp_path, chelsea, coffee, tiny_model):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    p = tmp_path / "tiny.onnx"
    torch.onnx.export(net, torch.zeros(1, 3, 32, 32), str(p), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    m = load_model(str(p), labels=_labels(tmp_path, 3))
    assert m.kind == "onnx" and m.supports == Needs.SCORES and m.preprocess.input_size == (32, 32)
    x = torch.randn(5, 3, 32, 32)
    np.testing.assert_allclose(m.scores(x, probs=False).numpy(), net(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(UnsupportedError, match="needs gradients"):
        m.check_supports(Needs.GRADIENTS, "gradient")


def _labels(tmp_path, k):
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(f"class{i}" for i in range(k)))
    return p


class WrongShape(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)).unsqueeze(-1)


class NaNScores(nn.Module):
    def forward(self, x):
        return torch.full((x.shape[0], 10), float("nan"))


class Raises(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("cls, text", [(WrongShape, "shape"), (NaNScores, "NaN"), (Raises, "failed.*boom")])
def test_bad_model_outputs_refused(tmp_path, cls, text):
    p = tmp_path / "bad.pt"
    torch.save(cls(), p)
    with pytest.raises(ModelLoadError, match=text):
        load_model(str(p), trust_pickle=True)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04garbage"])
def test_model_file_that_is_not_a_model(tmp_path, content):
    p = tmp_path / "junk.pt"
    p.write_bytes(content)
    with pytest.raises(ExplorerError, match="junk.pt"):
        load_model(str(p))


def test_state_dict_file_alone_needs_an_architecture(tmp_path):
    p = tmp_path / "sd.pt"
    torch.save(nn.Linear(2, 2).state_dict(), p)
    with pytest.raises(FileError, match="architecture"):
        load_model(str(p))


def test_batch_policy_halves_on_oom(tiny_model):
    from explorer.models.device import BatchPolicy

    policy = BatchPolicy(torch.device("cpu"), size=8)
    calls = []

    def fn(b):
        calls.append(b.shape[0])
        if b.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return b * 2

    out = policy.call(fn, torch.arange(8.0).view(8, 1))
    assert torch.equal(out, torch.arange(8.0).view(8, 1) * 2)
    assert policy.size == 2 and calls[0] == 8


def test_class_index_by_name(model):
    assert model.class_index("espresso") == 967
    assert model.class_index("967") == 967
    with pytest.raises(ExplorerError):
        model.class_index(5000)
    assert model.class_index("egyptian CAT") == 285
    with pytest.raises(UnknownNameError, match="Egyptian cat"):
        model.class_index("egyptian")
