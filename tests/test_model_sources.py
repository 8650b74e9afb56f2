"""One model-source registry (core/model_sources.py) read by the loader, the argument type and the CLI help:
a file is told by its suffix in any case, and every source appears in the help and the listing."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from explorer.cli.common import add_model_args
from explorer.core import argtypes as T
from explorer.core.errors import FileError
from explorer.core.model_sources import MODEL_SOURCES, SourceKind, source_of
from explorer.core.types import EMBEDDED_MODELS
from explorer.models import load_model, model_specs


@pytest.mark.parametrize(("spec", "kind"), [
    ("default", SourceKind.EMBEDDED), ("efficientnet_lite2", SourceKind.EMBEDDED),
    ("torchvision:resnet18", SourceKind.TORCHVISION), ("timm:vit_tiny_patch16_224", SourceKind.TIMM),
    ("hf:owner/name", SourceKind.HF), ("m.pt", SourceKind.TORCH_FILE), ("M.PT", SourceKind.TORCH_FILE),
    ("m.Pth", SourceKind.TORCH_FILE), ("dir/model", SourceKind.TORCH_FILE), ("m.onnx", SourceKind.ONNX),
    ("M.ONNX", SourceKind.ONNX), ("nonsense", None), ("timm.ONNX.txt", None),
])
def test_a_spec_is_told_by_prefix_or_suffix_in_any_case(spec, kind):
    found = source_of(spec)
    assert (found.kind if found is not None else None) == kind


def _parser():
    p = argparse.ArgumentParser(prog="x")
    add_model_args(p)
    return p


def test_the_cli_help_and_the_listing_name_every_source():
    text = _parser().format_help().replace("\n", " ")
    text = " ".join(text.split())  # argparse wraps the help
    for s in MODEL_SOURCES:
        for shown in s.shown():
            assert shown.split(" (")[0] in text, shown
        for suffix in s.suffixes:
            assert suffix in text, suffix
    assert model_specs()[: len(EMBEDDED_MODELS)] == list(EMBEDDED_MODELS)
    assert {"torchvision:NAME", "timm:NAME", "hf:FOLDER_OR_REPO_ID", "FILE.pt (TorchScript)", "FILE.onnx"} <= set(
        model_specs())


@pytest.mark.parametrize("name", ["missing.PT", "missing.ONNX", "missing.pt", "missing.onnx"])
def test_a_missing_model_file_is_refused_as_a_file_in_any_case(tmp_path, name):
    path = str(tmp_path / name)
    with pytest.raises(argparse.ArgumentTypeError, match="no such file"):
        T.model_spec()(path)
    with pytest.raises(FileError, match="no such model file"):
        load_model(name)  # no folder in the spec: only the suffix says it is a file
    with pytest.raises(FileError, match="no such model file"):
        load_model(path)


@pytest.mark.parametrize("suffix", [".ONNX", ".onnx"])
def test_an_upper_case_onnx_file_loads_as_onnx(tmp_path, suffix):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    p = tmp_path / f"tiny{suffix}"
    torch.onnx.export(net, torch.zeros(1, 3, 32, 32), str(p), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    assert T.model_spec()(str(p)) == str(p)
    m = load_model(str(p))
    assert m.kind == "onnx" and m.preprocess.input_size == (32, 32)


@pytest.mark.parametrize("suffix", [".PT", ".pt"])
def test_an_upper_case_torchscript_file_loads_as_torchscript(tmp_path, suffix):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    p = tmp_path / f"tiny{suffix}"
    torch.jit.script(net).save(str(p))
    assert T.model_spec()(str(p)) == str(p)
    assert load_model(str(p)).kind == "torchscript"
