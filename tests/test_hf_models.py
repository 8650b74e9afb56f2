"""Hugging Face image classifiers (issue 26): tiny random ViT and ConvNeXt configs written with
``save_pretrained`` and loaded as ``hf:FOLDER`` (the CLI's path, offline): every registered method gives a
finite map or the refusal listed here, Grad-CAM on the ViT matches pytorch-grad-cam's Hugging Face recipe,
and bad folders are refused in one line (exit 2) naming the file and the fix.

The models are 32 px with 8 px patches (a 4x4 grid) and two blocks or stages: each builds and runs in well
under a second."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from explorer.core.errors import ExplorerError, UnsupportedError
from explorer.methods import METHODS, explain, method_names
from explorer.models import load_model
from explorer.models.layers import hook_count

transformers = pytest.importorskip("transformers")

SIZE = 32
LABELS = {0: "cat", 1: "dog", 2: "bird"}


def _vit(folder, **cfg_kw):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=len(LABELS),
                                 id2label=LABELS, label2id={v: k for k, v in LABELS.items()}, **cfg_kw)
    transformers.ViTForImageClassification(cfg).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": SIZE, "width": SIZE}, resample=3).save_pretrained(folder)
    return folder


def _convnext(folder):
    torch.manual_seed(0)
    cfg = transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=4,
                                      image_size=SIZE)
    transformers.ConvNextForImageClassification(cfg).save_pretrained(folder)
    transformers.ConvNextImageProcessor(size={"shortest_edge": SIZE}, crop_pct=0.875).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"vit": _vit(root / "vit"), "convnext": _convnext(root / "convnext")}


@pytest.fixture(scope="module")
def photo(chelsea):
    from PIL import Image

    im = Image.fromarray(chelsea)
    im.thumbnail((64, 64))
    return np.asarray(im)


@pytest.fixture(scope="module", params=["vit", "convnext"])
def hf_model(request, folders):
    return request.param, load_model(f"hf:{folders[request.param]}", device="cpu", allow_download=False)


def test_config_and_processor_are_read(folders):
    vit = load_model(f"hf:{folders['vit']}", device="cpu", allow_download=False)
    assert vit.labels == ["cat", "dog", "bird"] and vit.activation == "softmax"
    assert vit.preprocess.input_size == (SIZE, SIZE) and vit.preprocess.mean == (0.5, 0.5, 0.5)
    assert vit.preprocess.interpolation == "bicubic"
    assert vit.default_layer() == "vit.layers.1.layernorm_before"
    info = vit.layer_info(vit.default_layer())
    assert info.layout == "NLC" and info.prefix == 1 and info.grid == (SIZE // 8, SIZE // 8)
    cnx = load_model(f"hf:{folders['convnext']}", device="cpu", allow_download=False)
    assert cnx.labels == [f"LABEL_{i}" for i in range(4)]
    proc = transformers.AutoImageProcessor.from_pretrained(folders["convnext"], local_files_only=True)
    assert cnx.preprocess.crop_pct == pytest.approx(0.875) and cnx.preprocess.mean == pytest.approx(proc.image_mean)
    assert cnx.layer_info(cnx.default_layer()).layout == "NCHW"


def test_problem_type_sets_the_activation(tmp_path):
    m = load_model(f"hf:{_vit(tmp_path / 'ml', problem_type='multi_label_classification')}", device="cpu")
    assert m.activation == "sigmoid" and m.describe()["activation"] == "sigmoid"
    assert load_model(f"hf:{tmp_path / 'ml'}", activation="softmax").activation == "softmax"  # the user's word wins


def expected_refusal(method: str, family: str) -> str | None:
    if method in ("guided_backprop", "deconvnet", "guided_gradcam"):
        return "has none"  # GELU, no ReLU modules
    if method == "lrp" and family == "convnext":
        # the conserving rules cover Hugging Face's ViT (methods/lrp_tokens.py), not yet its ConvNeXt: its own
        # LayerNorm class and layer scale are named in a refusal before any computation
        return "lrp is refused"
    if method == "cam":
        return "use gradcam"  # a token head or a norm between the pooled map and the classifier
    if method in ("attention_rollout", "chefer") and family != "vit":
        return "has no transformer attention blocks"
    if method == "explainer":
        return "explainer"  # the shipped head was trained for the default model only
    if method == "fido" and family == "vit":
        return "scale=0.5"  # position embeddings fix the ViT's input size; its quick setting halves it
    return None


def quick(method: str) -> dict:
    params = dict(METHODS.get(method).quick)
    if method == "occlusion":
        params.update(window=16, stride=8)
    return params


@pytest.mark.parametrize("method", method_names())
def test_every_method_maps_or_refuses(method, hf_model, photo):
    family, model = hf_model
    attn = model.module.config._attn_implementation
    refusal = expected_refusal(method, family)
    if refusal is not None:
        with pytest.raises(ExplorerError) as err:
            explain(method, model, photo, params=quick(method), seed=1)
        msg = str(err.value)
        assert refusal in msg and "\n" not in msg, msg
        instead = re.search(r"use ([a-z_, ]+?) instead", msg)
        for other in re.split(r",| or ", instead.group(1)) if instead else []:
            assert expected_refusal(other.strip(), family) is None, (other, msg)
        assert isinstance(err.value, UnsupportedError) or method == "explainer", type(err.value)
    else:
        exp = explain(method, model, photo, params=quick(method), seed=1)
        for layer, m in exp.raw.items():
            assert np.isfinite(m).all(), layer
    assert hook_count(model.module) == 0
    assert model.module.config._attn_implementation == attn  # eager only for the attention methods' run


def test_cli_explains_a_save_pretrained_folder_offline(folders, samples_dir, tmp_path, capsys, monkeypatch):
    from explorer.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    assert main(["explain", str(samples_dir / "chelsea.png"), "--model", f"hf:{folders['vit']}", "--method",
                 "gradcam", "--offline", "--out", str(out)]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["model_info"]["activation"] == "softmax" and man["target_name"] in LABELS.values()
    assert np.isfinite(np.load(out / "salient.npy")).all()


def test_gradcam_matches_pytorch_grad_cams_hugging_face_recipe(folders, photo):
    """pytorch-grad-cam's tutorial for Hugging Face ViTs: a wrapper returning ``.logits`` and a reshape
    transform that drops the class token and puts the 4x4 patch tokens on a grid, at the same layer."""
    gc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from explorer.methods.base import prepare_context

    model = load_model(f"hf:{folders['vit']}", device="cpu")
    ctx = prepare_context(model, photo)

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x).logits

    def reshape(t, h=SIZE // 8, w=SIZE // 8):
        return t[:, 1:, :].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)

    for layer in (model.default_layer(), "vit.layers.0.layernorm_after"):
        ours = explain("gradcam", model, photo, target=ctx.target, params={"layer": layer}, seed=0).raw["salient"]
        target = model.module.get_submodule(layer)
        with gc.GradCAM(model=Logits(model.module), target_layers=[target], reshape_transform=reshape) as cam:
            x = ctx.x.detach().clone().requires_grad_(True)
            theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(ctx.target)])[0]
        r = float(np.corrcoef(np.ravel(ours), np.ravel(theirs))[0, 1])
        assert r >= 0.99, (layer, r)
    assert hook_count(model.module) == 0


# --------------------------------------------------------------------------- bad input
def _cli_error(args, samples_dir, tmp_path, capsys) -> str:
    from explorer.cli import main

    capsys.readouterr()
    code = main(["explain", str(samples_dir / "chelsea.png"), "--method", "gradient", "--offline", "--out",
                 str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    return err


def test_bad_folders_are_one_line_exit_2(folders, samples_dir, tmp_path, capsys):
    import shutil

    no_weights = tmp_path / "no_weights"
    shutil.copytree(folders["vit"], no_weights)
    (no_weights / "model.safetensors").unlink()
    err = _cli_error(["--model", f"hf:{no_weights}"], samples_dir, tmp_path, capsys)
    assert str(no_weights) in err and "no weights" in err and "save_pretrained" in err
    no_config = tmp_path / "no_config"
    shutil.copytree(folders["vit"], no_config)
    (no_config / "config.json").unlink()
    err = _cli_error(["--model", f"hf:{no_config}"], samples_dir, tmp_path, capsys)
    assert str(no_config) in err and "config.json" in err
    wrong_size = tmp_path / "wrong_size"
    shutil.copytree(folders["vit"], wrong_size)
    transformers.ViTImageProcessor(size={"height": 48, "width": 48}).save_pretrained(wrong_size)
    err = _cli_error(["--model", f"hf:{wrong_size}"], samples_dir, tmp_path, capsys)
    assert "preprocessor_config.json" in err and "48x48" in err and f"{SIZE}x{SIZE}" in err


def test_bad_output_options_are_one_line_exit_2(folders, samples_dir, tmp_path, capsys):
    vit = f"hf:{folders['vit']}"
    err = _cli_error(["--model", vit, "--output", "scores"], samples_dir, tmp_path, capsys)
    assert "has no entry 'scores'" in err and "logits" in err
    one = tmp_path / "one"
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=64, num_labels=1)
    transformers.ViTForImageClassification(cfg).save_pretrained(one)
    transformers.ViTImageProcessor(size={"height": SIZE, "width": SIZE}).save_pretrained(one)
    err = _cli_error(["--model", f"hf:{one}", "--activation", "softmax"], samples_dir, tmp_path, capsys)
    assert "one output" in err and "sigmoid" in err
    binary = load_model(f"hf:{one}")
    assert binary.binary and binary.labels == ["LABEL_0", "not LABEL_0"] and binary.activation == "sigmoid"


@pytest.mark.parametrize("family", ["deit", "swin", "resnet"])
def test_in_memory_families_find_their_layers(family, photo):
    """DeiT (class + distillation tokens, teacher head), Swin (token grid without a class token) and ResNet
    handed over in memory, as a user holding a transformers module would (config alone, no processor)."""
    import explorer

    torch.manual_seed(0)
    net = {
        "deit": lambda: transformers.DeiTForImageClassificationWithTeacher(transformers.DeiTConfig(
            image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, num_labels=3)),
        "swin": lambda: transformers.SwinForImageClassification(transformers.SwinConfig(
            image_size=SIZE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4,
            num_labels=3)),
        "resnet": lambda: transformers.ResNetForImageClassification(transformers.ResNetConfig(
            embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)),
    }[family]().eval()
    model = explorer.load_model(net, preprocess={"size": SIZE})
    info = model.layer_info(model.default_layer())
    assert info.layout == ("NCHW" if family == "resnet" else "NLC")
    assert info.prefix == {"deit": 2, "swin": 0, "resnet": 0}[family]
    assert np.isfinite(explain("gradcam", model, photo, seed=0).raw["salient"]).all()
    if family == "deit":
        for method in ("attention_rollout", "chefer"):
            exp = explain(method, model, photo, seed=0)
            assert exp.info["readout"] == [0, 1] and np.isfinite(exp.raw["salient"]).all()
    assert hook_count(net) == 0


def test_in_memory_module_with_its_processor_or_config_alone(folders):
    import explorer

    net = transformers.AutoModelForImageClassification.from_pretrained(folders["vit"], local_files_only=True)
    proc = transformers.AutoImageProcessor.from_pretrained(folders["vit"], local_files_only=True)
    with_proc = explorer.load_model(net, processor=proc)
    assert with_proc.preprocess.interpolation == "bicubic" and with_proc.labels == ["cat", "dog", "bird"]
    alone = explorer.load_model(transformers.AutoModelForImageClassification.from_pretrained(
        folders["vit"], local_files_only=True))
    assert alone.preprocess.input_size == (SIZE, SIZE)  # the config's image_size
    wrong = transformers.ViTImageProcessor(size={"height": 48, "width": 48})
    with pytest.raises(ExplorerError, match="makes 48x48 inputs.*take 32x32"):
        explorer.load_model(transformers.AutoModelForImageClassification.from_pretrained(
            folders["vit"], local_files_only=True), processor=wrong)
    with pytest.raises(ExplorerError, match="processor= is for a Hugging Face model"):
        explorer.load_model(torch.nn.Linear(3, 3), processor=proc)


def test_a_repo_id_loads_from_the_local_hub_cache_offline_and_a_missing_one_is_named(tmp_path, samples_dir):
    """``hf:owner/name`` reads the hub cache's layout (models--owner--name/snapshots/REV, refs/main) with
    nothing downloaded; a repo id the cache lacks is one line naming it, exit 2. A fresh process, so the hub
    library reads HF_HUB_CACHE as a user's would."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "hub"
    rev = "0" * 40
    snap = cache / "models--tiny--vit" / "snapshots" / rev
    _vit(snap)
    (cache / "models--tiny--vit" / "refs").mkdir(parents=True)
    (cache / "models--tiny--vit" / "refs" / "main").write_text(rev)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "offscreen"}

    def cli(spec: str, out):
        return subprocess.run([sys.executable, "-m", "explorer", "explain", str(samples_dir / "chelsea.png"),
                               "--model", spec, "--method", "gradcam", "--offline", "--out", str(out)],
                              capture_output=True, text=True, env=env, timeout=300)

    ok = cli("hf:tiny/vit", tmp_path / "out")
    assert ok.returncode == 0, ok.stderr
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["target_name"] in LABELS.values() and "hub cache" in json.dumps(man["model_info"])
    missing = cli("hf:tiny/absent", tmp_path / "out2")
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(lines) == 1
    assert "hf:tiny/absent is not in the local Hugging Face cache" in lines[0] and "nothing is downloaded" in lines[0]


def test_rollout_on_an_hf_vit_is_abnar_and_zuidemas_on_its_own_attentions(photo):
    """Attention rollout read with eager attention switched on for the run equals the rollout computed by hand
    from what the model itself returns with ``output_attentions=True``; the model's own (fused) attention
    implementation is back afterwards."""
    import torch.nn.functional as F

    import explorer

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=SIZE, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=3)
    net = transformers.ViTForImageClassification(cfg).eval()
    model = explorer.load_model(net, preprocess={"size": SIZE})
    before = net.config._attn_implementation
    exp = explain("attention_rollout", model, photo, seed=0)
    assert net.config._attn_implementation == before
    from explorer.methods.base import prepare_context

    x = prepare_context(model, photo).x
    net.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            attentions = net(x, output_attentions=True).attentions
    finally:
        net.config._attn_implementation = before
    n = attentions[0].shape[-1]
    rollout = torch.eye(n)
    for a in attentions:
        fused = 0.5 * a[0].mean(0) + 0.5 * torch.eye(n)
        rollout = (fused / fused.sum(-1, keepdim=True)) @ rollout
    grid = rollout[0, 1:].reshape(1, 1, SIZE // 8, SIZE // 8)
    ours = exp.raw["salient"]
    hand = F.interpolate(grid, size=ours.shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    assert np.corrcoef(hand.ravel(), ours.ravel())[0, 1] >= 0.999
