"""The public Python API (issue 17): explorer.load_model / explain / explain_iter / evaluate / view.

An in-memory torchvision resnet18 (random weights, 32-pixel input so every method stays quick) and the
embedded EfficientNet-Lite0 go through every public function; every registered method goes through
``explorer.explain``; the user's module is never copied, never put in training mode and is left exactly as
it was (weights, flags, hooks, patched forwards, fused-attention switches), also after an exception or a
KeyboardInterrupt in the middle of a stream. Bad input raises the CLI's typed error with the CLI's message.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import explorer
from explorer.methods import METHODS, method_names
from explorer.models.layers import hook_count

NAMES = method_names()


# --------------------------------------------------------------------------- helpers
def _resnet(num_classes: int = 10) -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


def _guard_copies(net: nn.Module) -> None:
    """Make any copy.deepcopy or pickling of ``net`` fail loudly (the API must use the object itself)."""

    def refuse(*_a, **_k):
        raise AssertionError("the user's model was copied")

    net.__deepcopy__ = refuse
    net.__reduce_ex__ = refuse


def _record_train_calls(net: nn.Module) -> list[bool]:
    """Every ``train(mode)`` call on any submodule (``eval()`` is ``train(False)``)."""
    calls: list[bool] = []
    for m in net.modules():
        original = m.train

        def train(mode=True, _orig=original):
            calls.append(bool(mode))
            return _orig(mode)

        m.train = train
    return calls


def snapshot(net: nn.Module) -> dict:
    """Everything a method could leave changed on a module."""
    return {
        "training": [m.training for m in net.modules()],
        "requires_grad": [p.requires_grad for p in net.parameters()],
        "grads": [p.grad is None for p in net.parameters()],
        "state": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "hooks": hook_count(net),
        "dicts": [sorted(k for k in vars(m) if not k.startswith("_")) for m in net.modules()],
        "fused": [getattr(m, "fused_attn", None) for m in net.modules()],
    }


def assert_unchanged(before: dict, net: nn.Module) -> None:
    after = snapshot(net)
    for key in ("training", "requires_grad", "grads", "hooks", "dicts", "fused"):
        assert after[key] == before[key], key
    assert before["state"].keys() == after["state"].keys()
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def resnet():
    """A random resnet18 handed over in training mode, as torchvision builds it; copies are refused."""
    net = _resnet()
    calls = _record_train_calls(net)
    _guard_copies(net)
    model = explorer.load_model(net, preprocess={"size": 32}, labels=[f"k{i}" for i in range(10)])
    return net, model, calls


# --------------------------------------------------------------------------- import and shape of the API
def test_import_is_cheap_and_the_api_is_listed():
    code = ("import sys, explorer; "
            "print(sorted(m for m in ('torch', 'PySide6', 'explorer.methods') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for name in ("load_model", "explain", "explain_iter", "evaluate", "view", "Explanation", "CancelToken",
                 "ExplorerError", "TargetError"):
        assert name in explorer.__all__ and name in dir(explorer)
        assert getattr(explorer, name).__doc__, name
    with pytest.raises(AttributeError):
        explorer.no_such_function


# --------------------------------------------------------------------------- the in-memory module
def test_module_is_wrapped_in_place(resnet):
    net, model, calls = resnet
    assert model.module is net and model.id == "ResNet (in memory)"
    assert not net.training and calls and True not in calls  # eval() once at load time, never train(True)
    assert all(p.requires_grad for p in net.parameters())  # the user's training setup is untouched
    assert model.preprocess.input_size == (32, 32) and model.labels[3] == "k3"
    assert explorer.load_model(model) is model


@pytest.mark.parametrize("name", NAMES)
def test_every_method_through_explain_leaves_the_module_as_it_was(name, resnet, image):
    net, model, calls = resnet
    cls = METHODS.get(name)
    before = snapshot(net)
    if cls.needs & ~model.supports:
        with pytest.raises(explorer.UnsupportedError):
            explorer.explain(net, image, name, **cls.quick)
    elif name == "explainer":  # the shipped checkpoint belongs to another classifier: refused, named
        with pytest.raises(explorer.ExplorerError, match="efficientnet_lite0"):
            explorer.explain(net, image, name, **cls.quick)
    elif name == "cam":  # at 32 pixels layer4 is 1x1, so the last spatial map (layer3) does not feed the head
        with pytest.raises(explorer.UnsupportedError, match="256 channels but the classifier takes 512"):
            explorer.explain(net, image, name, **cls.quick)
    else:
        exp = explorer.explain(net, image, name, target="k3" if not cls.class_agnostic else None, seed=2, **cls.quick)
        assert isinstance(exp, explorer.Explanation) and exp.complete and exp.method == name
        assert exp.target == (None if cls.class_agnostic else 3)
        for layer, m in exp.maps.items():
            assert m.shape == image.shape[:2] and m.dtype == np.float32 and np.isfinite(m).all(), layer
            assert exp.signed[layer] == cls.signed_of(layer)
    assert_unchanged(before, net)
    assert True not in calls


def test_bad_modules_are_refused_with_the_loaders_messages():
    class Tuple(nn.Module):
        def forward(self, x):
            return x.mean((2, 3)), x

    class Dict(nn.Module):
        def forward(self, x):
            return {"logits": x.mean((2, 3))}

    # issue 26: a tuple's element 0 and a dict's "logits" are the scores by default; other parts by output=
    assert explorer.load_model(Tuple()).num_classes == 3
    assert explorer.load_model(Dict()).num_classes == 3
    with pytest.raises(explorer.ModelLoadError, match="output=2 is not a tensor of class scores"):
        explorer.load_model(Tuple(), output=2)
    with pytest.raises(explorer.ModelLoadError, match="has no entry 'scores'.*one of logits"):
        explorer.load_model(Dict(), output="scores")
    with pytest.raises(explorer.ModelLoadError, match=r"shape \(1, 4, 30, 30\); a classifier must return \(1, K\)"):
        explorer.load_model(nn.Conv2d(3, 4, 3), preprocess={"size": 32})
    with pytest.raises(explorer.ModelLoadError, match="has 10 outputs but .* 3 classes"):
        explorer.load_model(_resnet(), labels=["a", "b", "c"])
    with pytest.raises(explorer.ModelLoadError, match="cannot use a int as a model"):
        explorer.load_model(3)


def test_preprocessing_from_torchvision_weights_timm_metadata_and_dicts():
    import timm
    from torchvision.models import ResNet18_Weights

    tv = explorer.load_model(_resnet(), preprocess=ResNet18_Weights.DEFAULT)  # the enum only: no download
    assert tv.preprocess.input_size == (224, 224) and tv.preprocess.policy == "center_crop"
    assert tv.preprocess.crop_pct == pytest.approx(224 / 256) and tv.preprocess.mean == (0.485, 0.456, 0.406)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=5)
    cfg = net.pretrained_cfg
    tm = explorer.load_model(net)
    assert tm.preprocess.mean == tuple(cfg["mean"]) and tm.preprocess.input_size == tuple(cfg["input_size"][1:])
    for bad, words in (({"mean": (123.7, 116.3, 103.5)}, "0..255"), ({"sizes": 3}, "unknown preprocess key"),
                       ({"std": (0, 1, 1)}, "std must be > 0"), ({"interpolation": "area"}, "interpolation must be")):
        with pytest.raises(explorer.ParamError, match=words):
            explorer.load_model(net, preprocess=bad)
    bicubic = explorer.load_model(net, preprocess={"size": 64, "interpolation": "bicubic"})
    assert bicubic.preprocess.interpolation == "bicubic"
    assert tv.preprocess.interpolation == "bilinear"  # ResNet18's transforms say so


def test_training_mode_after_load_is_refused_not_silently_used(image):
    net = _resnet()
    model = explorer.load_model(net, preprocess={"size": 32})
    net.train()  # the user goes back to training
    with pytest.raises(explorer.ModelLoadError, match=r"training mode.*model\.eval\(\)"):
        explorer.explain(model, image, "gradient")
    assert net.training  # refused, not switched behind the user's back
    net.eval()
    assert explorer.explain(model, image, "gradient").complete


# --------------------------------------------------------------------------- images and targets
@pytest.mark.parametrize("make, words", [
    (lambda im: im.astype(np.float32), "float values up to"),
    (lambda im: np.concatenate([im, im[..., :1]], 2), "4 channels"),
    (lambda im: torch.from_numpy(im).permute(2, 0, 1).float() / 255 - 0.5, "already normalised"),
    (lambda im: np.stack([im, im]), "a batch of 2 images"),
    (lambda im: im.astype(bool), "mask, not an image"),
    (lambda im: [1, 2, 3], "cannot use a list as an image"),
])
def test_bad_images_are_refused(make, words, resnet, image):
    with pytest.raises(explorer.ImageReadError, match=words):
        explorer.explain(resnet[1], make(image), "gradient")


def test_every_image_form_gives_the_same_map(resnet, image, tmp_path):
    from PIL import Image

    path = tmp_path / "im.png"
    Image.fromarray(image).save(path)
    forms = [image, str(path), path, Image.fromarray(image), torch.from_numpy(image).permute(2, 0, 1).float() / 255,
             image.astype(np.float64) / 255, torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255]
    ref = explorer.explain(resnet[1], image, "gradient").maps["salient"]
    for f in forms:
        np.testing.assert_allclose(explorer.explain(resnet[1], f, "gradient").maps["salient"], ref,
                                   rtol=1e-5, atol=1e-7)


def test_targets_by_index_and_name_and_refusals(resnet, image):
    model = resnet[1]
    assert explorer.explain(model, image, "gradient", target=7).target == 7
    assert explorer.explain(model, image, "gradient", target="K7").target == 7  # case-insensitive, as the CLI
    with pytest.raises(explorer.TargetError,
                       match=r"class index 10 is out of range: the model has 10 classes \(0..9\)"):
        explorer.explain(model, image, "gradient", target=10)
    with pytest.raises(explorer.UnknownNameError, match="unknown class 'zebra'"):
        explorer.explain(model, image, "gradient", target="zebra")
    with pytest.raises(explorer.ParamError, match="unknown parameter"):
        explorer.explain(model, image, "rise", nn=3)
    with pytest.raises(explorer.ParamError):
        explorer.explain(model, image, "rise", n=0)
    with pytest.raises(explorer.UnknownNameError, match="unknown method 'gradcamm'"):
        explorer.explain(model, image, "gradcamm")


def test_user_errors_have_the_cli_messages(model, chelsea, samples_dir, tmp_path, capsys):
    from explorer.cli import main

    path = str(samples_dir / "chelsea.png")
    cases = [(["--target", "5000"], {"target": 5000}, "gradient"), (["--param", "nn=3"], {"nn": 3}, "rise"),
             (["--param", "n=0"], {"n": 0}, "rise")]
    for cli_args, kw, method in cases:
        capsys.readouterr()
        assert main(["explain", path, "--method", method, *cli_args, "--out", str(tmp_path / "o")]) == 2
        line = capsys.readouterr().err.strip()
        target = kw.pop("target", None)
        with pytest.raises(explorer.ExplorerError) as info:
            explorer.explain(model, chelsea, method, target=target, **kw)
        assert line == f"explorer: error: {info.value}"


# --------------------------------------------------------------------------- results
def test_explanation_files_pictures_and_manifest_match_the_cli(model, chelsea, samples_dir, tmp_path):
    from explorer.cli import main

    exp = explorer.explain(model, samples_dir / "chelsea.png", "gradcam")
    assert exp.target == 285 or exp.target_name in ("Egyptian cat", "tabby", "tiger cat")
    assert exp.maps["salient"].shape == chelsea.shape[:2] and exp.signed == {"salient": False, "signed": True}
    assert len(exp.predictions) == 5 and exp.predictions[0][0] == exp.target
    man = exp.manifest()
    saved = exp.save(tmp_path / "api")
    assert json.loads((tmp_path / "api" / "manifest.json").read_text()) == json.loads(json.dumps(saved))
    assert {k: v for k, v in man.items() if k != "timings"} == {k: v for k, v in saved.items() if k != "timings"}
    np.testing.assert_array_equal(np.load(tmp_path / "api" / "salient.npy"), exp.maps["salient"])
    assert main(["explain", str(samples_dir / "chelsea.png"), "--method", "gradcam", "--out",
                 str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert set(cli) == set(man) and cli["files"] == man["files"] and cli["target_index"] == man["target_index"]
    assert [t["index"] for t in cli["top5"]] == [t["index"] for t in man["top5"]]
    np.testing.assert_allclose(np.load(tmp_path / "cli" / "salient.npy"), exp.maps["salient"], rtol=1e-4, atol=1e-6)
    over = exp.overlay()
    assert over.size == (chelsea.shape[1], chelsea.shape[0]) and over.mode == "RGB"
    assert not np.array_equal(np.asarray(over), chelsea)  # the map is drawn
    assert exp._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib

    matplotlib.use("Agg")
    ax = exp.plot(map_name="signed")
    assert ax.images and "signed" in ax.get_title()
    with pytest.raises(explorer.UnknownNameError, match="unknown map 'nope'"):
        exp.overlay("nope")
    # the keyword's old name (before issue 32: a layer is a network's) is still read, and a clash is refused
    assert np.array_equal(np.asarray(exp.overlay(layer="signed")), np.asarray(exp.overlay(map_name="signed")))
    with pytest.raises(explorer.ParamError, match="disagree"):
        exp.overlay(map_name="salient", layer="signed")


def test_explain_iter_streams_and_honours_cancel(model, chelsea):
    parts = list(explorer.explain_iter(model, chelsea, "rise", n=64, batch_size=16, seed=1))
    assert len(parts) > 2 and parts[-1].complete and not any(p.complete for p in parts[:-1])
    assert [p.progress for p in parts] == sorted(p.progress for p in parts)
    final = explorer.explain(model, chelsea, "rise", n=64, batch_size=16, seed=1)
    np.testing.assert_allclose(parts[-1].maps["salient"], final.maps["salient"], rtol=1e-5, atol=1e-7)
    token = explorer.CancelToken()
    got = []
    for part in explorer.explain_iter(model, chelsea, "rise", n=256, batch_size=16, cancel=token):
        got.append(part)
        token.cancel()
    assert got[-1].cancelled and not got[-1].complete and len(got) == 2
    assert np.isfinite(got[-1].maps["salient"]).all()


def test_evaluate_curves_on_both_models(model, resnet, chelsea, image):
    exp = explorer.explain(model, chelsea, "gradcam")
    res = explorer.evaluate(model, chelsea, exp, metrics=("deletion", "insertion", "confidence"), step=5000)
    for mode in ("deletion", "insertion"):
        c = res[mode]
        assert c["fractions"][0] == 0 and c["fractions"][-1] == 1 and len(c["scores"]) == len(c["fractions"]) == 12
        assert 0 <= c["auc"] <= 1 and c["target"] == exp.target and c["step"] == 5000
    assert 0 <= res["confidence"]["drop"] <= 100
    # the same numbers as the evaluation module gives for the same map
    from explorer.evaluation.causal import causal_curve

    ref = causal_curve(model, chelsea, exp.maps["salient"], exp.target, mode="deletion", step=5000)
    np.testing.assert_allclose(res["deletion"]["scores"], ref.scores, rtol=1e-6)
    net = resnet[0]
    r = explorer.evaluate(net, image, explorer.explain(net, image, "gradient"), step=64)
    assert set(r) == {"deletion", "insertion"} and np.isfinite(r["deletion"]["scores"]).all()
    with pytest.raises(explorer.UnknownNameError, match="unknown metric 'pointing'"):
        explorer.evaluate(model, chelsea, exp, metrics=["pointing"])
    with pytest.raises(explorer.ExplorerError, match="not of this"):
        explorer.evaluate(model, image, exp)


def test_borex_refines_a_prior_explanation(resnet, image):
    prior = explorer.explain(resnet[1], image, "gradient")
    exp = explorer.explain(resnet[1], image, "borex", prior="gradient", iterations=2, priors=[prior])
    assert exp.complete and exp.maps["refined"].shape == image.shape[:2]


# --------------------------------------------------------------------------- interrupts and exceptions
class Tripwire(nn.Module):
    """Raises ``error`` on its ``at``-th forward once armed (inside the model, with method hooks attached)."""

    def __init__(self, error: BaseException, at: int):
        super().__init__()
        self.error, self.at, self.calls, self.armed = error, at, 0, False

    def forward(self, x):
        if self.armed:
            self.calls += 1
            if self.calls >= self.at:
                raise self.error
        return x


def _wired(error: BaseException, at: int):
    net = _resnet()
    wire = Tripwire(error, at)
    net.layer3 = nn.Sequential(net.layer3, wire)
    model = explorer.load_model(net, preprocess={"size": 32})
    model.layer_names()  # layer discovery before arming
    return net, model, wire


INTERRUPTED = ["gradcam", "guided_backprop", "lrp", "fido", "rise", "scorecam", "smoothgrad"]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("the user's model failed")],
                         ids=["keyboard", "exception"])
@pytest.mark.parametrize("name", INTERRUPTED)
def test_interrupt_inside_compute_restores_the_model(name, error, image):
    net, model, wire = _wired(error, at=2)
    before = snapshot(net)
    wire.armed = True
    quick = dict(METHODS.get(name).quick)
    with pytest.raises(type(error)):
        try:
            for _ in explorer.explain_iter(model, image, name, **quick):
                pass
        except KeyboardInterrupt as exc:  # re-raised as-is; caught here so pytest does not stop the session
            raise exc
    wire.armed = False
    assert_unchanged(before, net)
    assert explorer.explain(model, image, "gradient").complete  # still usable


def test_interrupt_between_steps_with_the_stream_still_referenced(image):
    """As after a KeyboardInterrupt in a notebook cell: the traceback keeps the suspended stream alive."""
    net = _resnet()
    model = explorer.load_model(net, preprocess={"size": 32})
    for name in ("rise", "fido", "smoothgrad", "borex"):
        before = snapshot(net)
        stream = explorer.explain_iter(model, image, name, **METHODS.get(name).quick)
        first = next(stream)
        assert not first.complete
        assert_unchanged(before, net)  # nothing attached while the stream is suspended
        stream.close()
        assert_unchanged(before, net)


def test_fused_attention_switches_restored_after_interrupt(image):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10)
    wire = Tripwire(KeyboardInterrupt(), at=1)
    net.blocks[1].mlp = nn.Sequential(net.blocks[1].mlp, wire)  # after block 1's attention has run
    model = explorer.load_model(net, preprocess={"size": 32})
    fused = [m.fused_attn for m in net.modules() if hasattr(m, "fused_attn")]
    assert fused, "timm's attention modules carry the switch"
    from explorer.core.types import Needs

    attention = [n for n in NAMES if Needs.ATTENTION in METHODS.get(n).needs]
    assert attention, "attention methods are registered"
    for name in attention:
        before = snapshot(net)
        wire.armed, wire.calls = True, 0
        with pytest.raises(KeyboardInterrupt):
            try:
                explorer.explain(model, image, name)
            except KeyboardInterrupt as exc:
                raise exc
        wire.armed = False
        assert_unchanged(before, net)
        assert [m.fused_attn for m in net.modules() if hasattr(m, "fused_attn")] == fused
        assert explorer.explain(model, image, name).complete
