"""The researcher's own model (issue 26): dtypes, wrappers, tuple/dict outputs, channel counts, timm's built
image size, loading errors that name the file, the near-uniform warning and the model choice's new fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import explorer
from explorer.core.errors import FileError, ModelLoadError, UnsupportedError
from explorer.methods import explain
from explorer.models.layers import hook_count

SIZE = 32


def _net(cin: int = 3, k: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(cin, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, k)).eval()


def _image(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)


PRE = {"size": SIZE}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_models_get_their_dtype_and_give_float32_maps(dtype):
    ref = explorer.load_model(_net(), preprocess=PRE)
    low = explorer.load_model(_net().to(dtype), preprocess=PRE)
    x = ref.preprocess.normalise(_image())
    assert low.forward.model_input(x).dtype == dtype
    assert low(x).dtype == torch.float32 and low.describe()["dtype"] == str(dtype).removeprefix("torch.")
    torch.testing.assert_close(low.scores(x), ref.scores(x), atol=0.02, rtol=0.05)
    for method in ("gradcam", "integrated_gradients"):
        try:
            exp = explain(method, low, _image(), target=1, params={"steps": 4} if method != "gradcam" else {})
        except UnsupportedError as exc:  # a CPU build without that kernel: the one-line refusal, not a crash
            assert ".float()" in str(exc) and "\n" not in str(exc)
            continue
        for m in exp.raw.values():
            assert m.dtype == np.float32 and np.isfinite(m).all()


def test_a_missing_low_precision_kernel_is_a_one_line_refusal():
    class NoHalfKernel(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 4).half()

        def forward(self, x):
            if x.dtype == torch.float16:
                raise RuntimeError('"slow_conv2d_cpu" not implemented for \'Half\'')
            return self.fc(x.mean((2, 3)))

    with pytest.raises(UnsupportedError, match=r"runs in float16.*module\.float\(\)") as err:
        explorer.load_model(NoHalfKernel(), preprocess=PRE)
    assert "\n" not in str(err.value)


def test_compiled_and_data_parallel_modules_offer_their_layers():
    plain = explorer.load_model(_net(), preprocess=PRE)
    ref = explain("gradcam", plain, _image(), target=2).raw["salient"]
    for wrapped in (torch.compile(_net()), nn.DataParallel(_net())):
        model = explorer.load_model(wrapped, preprocess=PRE)
        assert model.layer_names() == plain.layer_names()
        assert any("explained through" in n for n in model.notes)
        np.testing.assert_allclose(explain("gradcam", model, _image(), target=2).raw["salient"], ref, atol=1e-5)
        assert hook_count(model.module) == 0


class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _net()

    def forward(self, x):
        z = self.net(x)
        return z, {"aux": z * 2}


class Named(Pair):
    def forward(self, x):
        z = self.net(x)
        return {"scores": z, "aux": z * 2}


def test_output_selector():
    x = torch.zeros(1, 3, SIZE, SIZE)
    base = explorer.load_model(_net(), preprocess=PRE)(x)
    assert torch.equal(explorer.load_model(Pair(), preprocess=PRE)(x), base)  # element 0 of a tuple
    with pytest.raises(ModelLoadError, match="no 'logits' entry.*output=NAME, one of scores, aux"):
        explorer.load_model(Named(), preprocess=PRE)
    named = explorer.load_model(Named(), preprocess=PRE, output="aux")
    assert torch.equal(named(x), 2 * base) and named.describe()["output"] == "aux"
    with pytest.raises(ModelLoadError, match="has no entry 'logit'.*one of scores, aux"):
        explorer.load_model(Named(), preprocess=PRE, output="logit")
    with pytest.raises(ModelLoadError, match="output=1 is not a tensor"):
        explorer.load_model(Pair(), preprocess=PRE, output=1)


def test_channel_counts():
    grey = explorer.load_model(_net(1), preprocess={"size": SIZE, "mean": (0.5,), "std": (0.25,)})
    assert grey.preprocess.mean == (0.5,) and grey.describe()["input_channels"] == 1
    exp = explain("gradcam", grey, _image(), target=0)
    assert exp.raw["salient"].shape == (SIZE, SIZE)
    averaged = explorer.load_model(_net(1), preprocess=PRE)  # RGB statistics given: averaged for the grey model
    assert averaged.preprocess.mean == pytest.approx((np.mean((0.485, 0.456, 0.406)),))
    with pytest.raises(ModelLoadError, match="takes 4 input channels") as err:
        explorer.load_model(_net(4), preprocess=PRE)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="takes 3 input channels but its preprocessing has one"):
        explorer.load_model(_net(3), preprocess={"size": SIZE, "mean": (0.5,), "std": (0.25,)})


def test_activation_is_the_users_choice_within_what_the_outputs_allow():
    m = explorer.load_model(_net(k=3), preprocess=PRE, activation="sigmoid")
    x = torch.zeros(2, 3, SIZE, SIZE)
    torch.testing.assert_close(m.scores(x), m(x).sigmoid())
    none = explorer.load_model(m, activation="none")
    torch.testing.assert_close(none.scores(x), none(x))
    assert m.activation == "sigmoid"  # the copy changed, not the original
    with pytest.raises(ModelLoadError, match="unknown activation 'tanh'"):
        explorer.load_model(_net(), preprocess=PRE, activation="tanh")
    with pytest.raises(ModelLoadError, match="one output.*always 1"):
        explorer.load_model(_net(k=1), preprocess=PRE, activation="softmax")


def test_binary_labels_from_the_user():
    m = explorer.load_model(_net(k=1), preprocess=PRE, labels=["tumour"])
    assert m.labels == ["tumour", "not tumour"] and m.class_index("not tumour") == 1
    both = explorer.load_model(_net(k=1), preprocess=PRE, labels=["malignant", "benign"])
    assert both.labels == ["malignant", "benign"]
    with pytest.raises(ModelLoadError, match="one output .* 3 classes"):
        explorer.load_model(_net(k=1), preprocess=PRE, labels=["a", "b", "c"])


def test_timm_preprocessing_follows_the_built_image_size():
    timm = pytest.importorskip("timm")
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64)
    assert explorer.load_model(net).preprocess.input_size == (64, 64)


def test_a_text_file_named_pth_is_not_a_weights_file(tmp_path):
    from explorer.models import load_model

    bad = tmp_path / "r18.pth"
    bad.write_text("not weights\n")
    with pytest.raises(FileError) as err:
        load_model("timm:resnet18", weights=str(bad), device="cpu")
    msg = str(err.value)
    assert "r18.pth" in msg and "is not a weights file" in msg and "\n" not in msg


def test_near_uniform_predictions_warn():
    flat = _net(k=100)
    with torch.no_grad():
        flat[-1].weight.mul_(1e-4)
    model = explorer.load_model(flat, preprocess=PRE)
    exp = explorer.explain(model, _image(), "gradient")
    assert "near-uniform over the 100 classes" in exp.manifest()["warnings"][0]
    sharp = _net(k=100)
    with torch.no_grad():
        sharp[-1].bias[7] = 50.0
    assert "warnings" not in explorer.explain(explorer.load_model(sharp, preprocess=PRE), _image(),
                                              "gradient").manifest()


def test_model_choice_records_activation_and_output():
    from explorer.session.model_choice import ModelChoice

    c = ModelChoice(spec="hf:/models/vit", activation="sigmoid", output="logits")
    back = ModelChoice.from_record(c.record())
    assert back == c and back.load_options() == {"activation": "sigmoid", "output": "logits"}
    assert ModelChoice(output="1").load_options()["output"] == 1
    with pytest.raises(ValueError, match="activation"):
        ModelChoice.from_record({"activation": "tanh"})


def test_cli_activation_and_output_options(samples_dir, tmp_path, capsys):
    from explorer.cli import main

    path = str(samples_dir / "chelsea.png")
    capsys.readouterr()
    assert main(["explain", path, "--method", "gradient", "--activation", "tanh", "--out", str(tmp_path)]) == 2
    assert "--activation" in capsys.readouterr().err
    assert main(["explain", path, "--method", "gradient", "--activation", "sigmoid", "--out",
                 str(tmp_path / "o")]) == 0
    import json

    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["model_info"]["activation"] == "sigmoid"
    assert all(0 < p["prob"] < 1 for p in man["top5"]) and sum(p["prob"] for p in man["top5"]) > 0



class _Dict(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _net()

    def forward(self, x):
        return {"logits": self.net(x)}


@pytest.mark.parametrize("case", ["float16", "grey", "dict-zennit"])
def test_lrp_refuses_what_explorers_forward_adapts(case):
    """Where LRP calls the module itself (a plain CNN's relevance form, zennit's composites) it would feed a half
    model float32, a grey model three channels and read a dict as scores: each used to escape as a traceback."""
    net = {"float16": lambda: _net().half(), "grey": lambda: _net(1), "dict-zennit": _Dict}[case]()
    model = explorer.load_model(net, preprocess=PRE)
    params = {"composite": "epsilon_plus_flat"} if case == "dict-zennit" else {}
    with pytest.raises(UnsupportedError, match=r"lrp: model .* so lrp is refused; use ") as err:
        explain("lrp", model, _image(), target=1, params=params)
    assert "\n" not in str(err.value) and "lrp" not in str(err.value).split("use ", 1)[1]


def test_lrp_reads_a_dict_output_through_explorers_forward():
    """The conserving composites' gradient form runs explorer's forward, which picks the logits out of a dict (a
    Hugging Face output): the map is the bare network's, in the same form."""
    from explorer.methods.lrp import lrp_relevance

    wrapped = _Dict()
    bare = explorer.load_model(wrapped.net, preprocess=PRE)
    res = explain("lrp", explorer.load_model(wrapped, preprocess=PRE), _image(), target=1)
    x, _ = bare.preprocess.to_input(_image())
    rel, _z = lrp_relevance(bare, x, 1, form="gradient")
    np.testing.assert_allclose(res.raw["salient"], rel.sum(1)[0].numpy(), rtol=1e-4, atol=1e-6)


def test_lrp_explains_both_decisions_of_a_binary_model():
    model = explorer.load_model(_net(k=1), preprocess=PRE, labels=["tumour"])
    pos = explain("lrp", model, _image(), target="tumour")
    neg = explain("lrp", model, _image(), target="not tumour")
    np.testing.assert_allclose(neg.raw["salient"], -pos.raw["salient"], rtol=1e-6, atol=1e-7)
    assert neg.info["logit"] == pytest.approx(-pos.info["logit"]) and neg.info["logit"] == pytest.approx(
        float(model(model.preprocess.normalise(_image()))[0, 1]), abs=1e-5)


@pytest.mark.parametrize("case", ["binary", "dict", "grey"])
def test_randomisation_metrics_score_the_clone_as_the_model(case):
    """The sanity check and sMPRT/eMPRT re-run the method on a copy of the model: the copy used to be the bare
    module, so a binary model's 'not' class was an IndexError, a dict output a KeyError, a grey model a
    channel error. The copy keeps the model's forward."""
    model = {"binary": lambda: explorer.load_model(_net(k=1), preprocess=PRE, labels=["tumour"]),
             "dict": lambda: explorer.load_model(_Dict(), preprocess=PRE),
             "grey": lambda: explorer.load_model(_net(1), preprocess=PRE)}[case]()
    target = "not tumour" if case == "binary" else 1
    exp = explorer.explain(model, _image(), "gradcam", target=target)
    res = explorer.evaluate(model, _image(), exp, metrics=["sanity", "smprt", "emprt"])
    assert np.isfinite(res["sanity"]["spearman_final"]) and np.isfinite(res["smprt"]["smprt"])
    assert np.isfinite(res["emprt"]["emprt"]) and np.isfinite(res["emprt"]["model_entropy_randomised"])


def test_log_odds_follow_the_activation():
    """FIDO's and the extremal perturbation's score. A sigmoid label's odds are its own logit, whatever the other
    labels score; the softmax's odds pit the class against the others."""
    from explorer.models.outputs import log_odds

    z = torch.tensor([[2.0, 1.0, -3.0]])
    torch.testing.assert_close(log_odds(z, 0, "sigmoid"), z[:, 0])
    torch.testing.assert_close(log_odds(z, 0), z[:, 0] - torch.logsumexp(z[:, 1:], 1))
    pair = torch.tensor([[1.5, -1.5]])  # a binary model's (z, -z): "not the class" has odds e^-z
    torch.testing.assert_close(log_odds(pair, 1, "sigmoid"), torch.tensor([-1.5]))


@pytest.mark.parametrize("method, params", [("fido", {}), ("extremal", {"score": "log_odds"})])
def test_odds_methods_score_through_the_models_activation(method, params, monkeypatch):
    """They used to take the softmax log-odds z_c - logsumexp(others) of every model, so a multi-label model's
    label was scored against the other labels."""
    import importlib

    from explorer.methods import METHODS
    from explorer.models import outputs

    seen = []

    def spy(logits, target, activation="softmax"):
        seen.append(activation)
        return outputs.log_odds(logits, target, activation)

    monkeypatch.setattr(importlib.import_module(METHODS.get(method).__module__), "log_odds", spy)
    model = explorer.load_model(_net(k=3), preprocess=PRE, activation="sigmoid")
    explain(method, model, _image(), target=2, params={**METHODS.get(method).quick, "steps": 2, **params}, seed=0)
    assert seen and set(seen) == {"sigmoid"}


def test_cli_explains_the_negation_of_a_binary_model(samples_dir, tmp_path, capsys):
    """A single-logit TorchScript model with one label, from the command line: "not NAME" is a target, and the
    top-5 holds the pair (p, 1 - p)."""
    import json

    from explorer.cli import main

    path, labels = tmp_path / "tumour.ts", tmp_path / "labels.txt"
    torch.jit.script(_net(k=1)).save(str(path))
    labels.write_text("tumour\n")
    out = tmp_path / "o"
    assert main(["explain", str(samples_dir / "chelsea.png"), "--model", str(path), "--labels", str(labels),
                 "--target", "not tumour", "--method", "gradient", "--offline", "--out", str(out)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["target_name"] == "not tumour" and man["model_info"]["binary"] is True
    assert sorted(p["name"] for p in man["top5"]) == ["not tumour", "tumour"]
    assert sum(p["prob"] for p in man["top5"]) == pytest.approx(1.0, abs=1e-5)


class _MeanInput(nn.Module):
    """Planted evidence of the normalisation: its three scores are the mean of each input channel, so they say
    exactly which (x - mean) / std the model was given."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_a_model_file_s_normalisation_is_the_users_and_an_assumed_one_is_said(tmp_path):
    from explorer.core.errors import ParamError
    from explorer.models import load_model

    path = tmp_path / "tanh_range.ts"
    torch.jit.script(_MeanInput()).save(str(path))
    white = np.full((SIZE, SIZE, 3), 255, np.uint8)
    assumed = load_model(str(path), labels=None, input_size=SIZE, engine="torch")
    assert any("ImageNet mean/std assumed" in n for n in assumed.notes)
    imagenet = zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    torch.testing.assert_close(assumed(assumed.preprocess.normalise(white))[0],
                               torch.tensor([(1 - m) / s for m, s in imagenet]))
    given = load_model(str(path), input_size=SIZE, engine="torch", mean=0.5, std=(0.5, 0.5, 0.5))
    assert not any("assumed" in n for n in given.notes)
    assert given.preprocess.mean == (0.5,) * 3 and given.describe()["preprocess"]["std"] == (0.5,) * 3
    torch.testing.assert_close(given(given.preprocess.normalise(white))[0], torch.ones(3))  # [-1, 1]: white is 1
    api = explorer.load_model(str(path), preprocess={"mean": (0.5,) * 3, "std": (0.5,) * 3, "size": SIZE},
                              engine="torch")
    assert not any("assumed" in n for n in api.notes) and api.preprocess.mean == (0.5,) * 3
    for bad, match in (({"std": 0}, "positive"), ({"mean": (0.1, 0.2)}, "one finite value"),
                       ({"mean": "grey"}, "not a number"), ({"mean": 123.7, "std": 58.4}, "0..255")):
        with pytest.raises(ParamError, match=match):
            load_model(str(path), input_size=SIZE, engine="torch", **bad)


def test_normalisation_in_the_cli_the_session_and_the_model_panel(tmp_path, capsys, qtbot):
    import json

    from explorer.cli import main
    from explorer.gui.model_panel import ModelPanel
    from explorer.session.model_choice import ModelChoice, normalisation_text, parse_normalisation

    path = tmp_path / "tanh_range.ts"
    torch.jit.script(_MeanInput()).save(str(path))
    img = tmp_path / "white.png"
    from PIL import Image

    Image.fromarray(np.full((SIZE, SIZE, 3), 255, np.uint8)).save(img)
    capsys.readouterr()
    args = ["explain", str(img), "--model", str(path), "--input-size", str(SIZE), "--method", "gradient",
            "--engine", "torch"]
    assert main([*args, "--std", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--std" in capsys.readouterr().err
    assert main([*args, "--mean", "0.5", "--std", "0.5", "--out", str(tmp_path / "o")]) == 0
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["model_info"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]

    c = ModelChoice(spec=str(path), mean=(0.5, 0.5, 0.5), std=(0.5,))
    back = ModelChoice.from_record(json.loads(json.dumps(c.record())))
    assert back == c and back.load_options()["mean"] == (0.5, 0.5, 0.5)
    with pytest.raises(TypeError, match="mean"):
        ModelChoice.from_record({"mean": "0.5"})
    assert parse_normalisation(normalisation_text(c.mean, c.std)) == (c.mean, c.std)
    assert parse_normalisation("") == (None, None)

    panel = ModelPanel()
    qtbot.addWidget(panel)
    asked = []
    panel.load_requested.connect(asked.append)
    panel.show_choice(c)
    assert panel.normalise.text() == "0.5,0.5,0.5 / 0.5"
    panel.normalise.setText("0.5 / -1")
    panel.load_btn.click()
    assert not asked and "must be positive" in panel.status.text()  # refused in the panel, nothing loaded
    panel.normalise.setText("0.5 / 0.5")
    panel.load_btn.click()
    assert asked and asked[0].mean == (0.5,) and asked[0].std == (0.5,)
