"""The scoring engine (explorer/models/engine.py): ONNX Runtime maps equal torch's, the cache is keyed and never
trusted, a module that cannot be exported falls back (auto) or is refused (onnxruntime).

Exports go to the run's temporary cache folder ($EXPLORER_CACHE_DIR, set by conftest.py); the tests that corrupt
or count cache files point it at their own ``tmp_path``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.core.errors import ModelLoadError
from explorer.evaluation.causal import deletion_insertion
from explorer.methods.base import explain
from explorer.models import engine as E
from explorer.models import load_model

QUICK = {"rise": {"n": 40}, "occlusion": {"window": 64, "stride": 32}, "lime": {"samples": 40}}


SIZE = 128  # the embedded model at a smaller input: the same graph, a third of the pixels (a faster suite)


@pytest.fixture(scope="module")
def ort_model():
    """The embedded model scoring through its ONNX export (decided at load: ``onnxruntime`` is explicit)."""
    m = load_model("efficientnet_lite0", device="cpu", input_size=SIZE, engine="onnxruntime")
    assert m.engine.active == "onnxruntime" and m.engine_record()["max_logit_diff"] < 1e-3
    return m


@pytest.fixture(scope="module")
def model():
    return load_model("efficientnet_lite0", device="cpu", input_size=SIZE, engine="torch")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.parametrize("method", sorted(QUICK))
def test_maps_through_onnxruntime_equal_torchs(ort_model, model, chelsea, method):
    a = explain(method, ort_model, chelsea, params=QUICK[method], seed=3)
    b = explain(method, model, chelsea, params=QUICK[method], seed=3)
    assert a.timings["images"] == b.timings["images"] > 0  # the engine's forwards are counted as torch's are
    assert a.target == b.target
    assert _pearson(a.raw[a.main], b.raw[b.main]) >= 0.999
    assert model.engine_record()["engine"] == "torch"  # conftest's default for the suite


def test_deletion_insertion_through_onnxruntime_equal_torchs(ort_model, model, chelsea):
    sal = explain("rise", model, chelsea, params=QUICK["rise"], seed=0)
    sal = sal.raw[sal.main]
    a = deletion_insertion(ort_model, chelsea, sal, step=SIZE * SIZE // 12)
    b = deletion_insertion(model, chelsea, sal, step=SIZE * SIZE // 12)
    for mode in ("deletion", "insertion"):
        assert len(a[mode].scores) == len(b[mode].scores) > 5
        assert _pearson(a[mode].scores, b[mode].scores) >= 0.999
        assert abs(a[mode].auc - b[mode].auc) < 1e-3


def test_gradients_and_hooks_stay_on_torch(ort_model, chelsea):
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.enable_grad():  # autograd on: torch's forward, with a graph
        xx = x.clone().requires_grad_(True)
        assert ort_model.logits(xx).requires_grad
    with torch.inference_mode():
        z = ort_model.logits(x)
        ref = ort_model(x)
        assert torch.allclose(z, ref, atol=1e-3) and not z.requires_grad
        assert ort_model.logits(torch.randn(1, 3, 96, 96)).shape == (1, 1000)  # another size: torch's
    # Ablation-CAM ablates a layer through a hook: its forwards must be torch's (the map is not the same otherwise)
    grad = explain("ablationcam", ort_model, chelsea, params={"top_channels": 8}, seed=0)
    assert np.isfinite(grad.raw[grad.main]).all() and ort_model.engine.active == "onnxruntime"


class _Branchy(nn.Module):
    """Data-dependent control flow: the exporter must refuse it (a trace would keep one branch)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        h = self.conv(x).mean(dim=(2, 3))
        if h.sum() > 0:
            return self.fc(h)
        return -self.fc(h)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()


def _api_load(net, engine, size=32):
    import explorer

    return explorer.load_model(net, preprocess={"size": size}, labels=[f"c{i}" for i in range(10)], engine=engine)


def test_module_that_cannot_be_exported_falls_back_with_a_note(tmp_path, monkeypatch, chelsea):
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    m = _api_load(_Branchy().eval(), "auto")
    rec = m.resolve_engine()
    assert rec["engine"] == "torch" and "cannot be exported to ONNX" in rec["note"]
    assert any("cannot be exported" in n for n in m.describe()["notes"])
    out = explain("rise", m, chelsea, params={"n": 20}, seed=0)  # still scores, on torch
    assert np.isfinite(out.raw[out.main]).all()
    with pytest.raises(ModelLoadError, match="engine onnxruntime.*cannot be exported"):
        _api_load(_Branchy().eval(), "onnxruntime")


def test_cache_keyed_by_weights_and_rebuilt_when_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    net = _tiny()
    first = _api_load(net, "onnxruntime")
    rec = first.engine_record()
    assert rec["source"] == "export" and (tmp_path / "onnx" / f"{rec['key']}.onnx").is_file()
    again = _api_load(_tiny(), "onnxruntime")  # same weights, another object: the cache serves it
    assert again.engine_record()["source"] == "cache" and again.engine_record()["key"] == rec["key"]
    other = _tiny()
    with torch.no_grad():
        other[0].weight.add_(0.5)
    changed = _api_load(other, "onnxruntime")
    assert changed.engine_record()["source"] == "export" and changed.engine_record()["key"] != rec["key"]
    # weights changed in place after the decision: torch scores the new weights, with a note
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        net[4].bias.add_(1.0)
    with torch.inference_mode():
        assert torch.allclose(first.logits(x), net(x), atol=1e-6)
    assert first.engine_record()["engine"] == "torch" and "weights changed" in first.engine_record()["note"]


def test_a_replaced_parameter_sends_the_forwards_back_to_torch(tmp_path, monkeypatch):
    """Not an in-place change: a new Parameter object (version counter 0) in place of the exported one."""
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    net = _tiny()
    m = _api_load(net, "onnxruntime")
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        m.logits(x)
    assert m.engine_record()["engine"] == "onnxruntime"
    net[4].weight = nn.Parameter(torch.randn_like(net[4].weight))
    monkeypatch.setattr(E.WeightsWatch, "RECHECK_S", 0.0)  # the tree walk is due (it is, on every later run)
    with torch.inference_mode():
        assert torch.allclose(m.logits(x), net(x), atol=1e-6)
    assert m.engine_record()["engine"] == "torch" and "weights changed" in m.engine_record()["note"]


@pytest.mark.parametrize("damage", ["garbage", "stale_sidecar", "other_graph"])
def test_corrupt_or_stale_cache_is_rebuilt_never_trusted(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    net = _tiny()
    key = _api_load(net, "onnxruntime").engine_record()["key"]
    onnx_file, sidecar = tmp_path / "onnx" / f"{key}.onnx", tmp_path / "onnx" / f"{key}.json"
    if damage == "garbage":
        onnx_file.write_bytes(b"\x80\x04not a graph")  # a pickle's opening bytes: never unpickled, just rebuilt
    elif damage == "stale_sidecar":
        meta = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**meta, "sha256": "0" * 64}))
    else:  # a well-formed graph of another network, with a sidecar that vouches for it: the check catches it
        torch.manual_seed(1)
        E._build(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                               nn.Linear(8, 10)).eval(), torch.randn(2, 3, 32, 32), onnx_file, key)
    m = _api_load(_tiny(), "onnxruntime")
    assert m.engine_record()["source"] == "export" and m.engine.active == "onnxruntime"
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(m.logits(x), net(x), atol=1e-4)
    assert E._read_cached(onnx_file, key) is not None  # the rebuilt file and its sidecar agree


def test_unwritable_cache_folder_is_a_note(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(blocker))
    m = _api_load(_tiny(), "auto")
    rec = m.resolve_engine()
    assert rec["engine"] == "torch" and "no writable cache folder" in rec["note"]
    with torch.inference_mode():
        assert m.logits(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_users_onnx_model_keeps_working(tmp_path, chelsea):
    net = _tiny()
    p = tmp_path / "mine.onnx"
    E._export(net, torch.randn(2, 3, 32, 32), p)
    m = load_model(str(p), labels=None, engine="auto")
    assert m.kind == "onnx" and m.engine is None
    assert m.engine_record() == E.onnx_model_record() and m.describe()["engine"]["engine"] == "onnxruntime"
    x = torch.randn(5, 3, 32, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(m.scores(x, probs=False).numpy(), net(x).numpy(), rtol=1e-4, atol=1e-5)
    out = explain("rise", m, chelsea, params={"n": 20}, seed=0)
    assert np.isfinite(out.raw[out.main]).all()


def test_cli_engine_onnxruntime_refused_in_one_line_when_not_exportable(tmp_path, samples_dir, capsys):
    ts = tmp_path / "tiny.ts"
    torch.jit.trace(_tiny(), torch.zeros(1, 3, 32, 32)).save(str(ts))
    rc = main(["explain", str(samples_dir / "chelsea.png"), "--method", "rise", "--model", str(ts),
               "--engine", "onnxruntime", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "engine onnxruntime" in err and "torchscript" in err and "Traceback" not in err


def test_cli_manifest_records_the_engine(tmp_path, samples_dir, ort_model):
    out = tmp_path / "o"  # the input size of ``ort_model``: its export in the run's cache serves this process
    assert main(["explain", str(samples_dir / "chelsea.png"), "--method", "occlusion", "--param", "window=64",
                 "--param", "stride=64", "--input-size", str(SIZE), "--engine", "auto", "--out", str(out)]) == 0
    rec = json.loads((out / "manifest.json").read_text())["model_info"]["engine"]
    assert rec["requested"] == "auto" and rec["engine"] in ("torch", "onnxruntime")
    assert rec["source"] == "cache" and rec["key"] == ort_model.engine_record()["key"]
    assert rec["torch_images_per_s"] > 0 and rec["onnxruntime_images_per_s"] > 0  # both were timed
    assert main(["explain", str(samples_dir / "chelsea.png"), "--method", "rise", "--engine", "bogus",
                 "--out", str(out)]) == 2


def test_engine_choice_names():
    assert E.engine_choice(None) in E.ENGINES and E.engine_choice("ONNXRuntime") == "onnxruntime"
    with pytest.raises(Exception, match="unknown engine 'fast'"):
        E.engine_choice("fast")


def test_score_only_runs_keep_torch_on_one_thread_beside_onnxruntime(ort_model, model, chelsea, monkeypatch):
    """While ORT scores, torch's spinning OpenMP workers would take its cores: a score-only run puts torch on
    one thread and gives the count back after; a torch-scored run and a gradient run leave it alone."""
    seen: list[tuple[str, int]] = []
    real = E.OrtForward.__call__

    def spy(self, x):
        seen.append(("ort", torch.get_num_threads()))
        return real(self, x)

    monkeypatch.setattr(E.OrtForward, "__call__", spy)
    before = torch.get_num_threads()
    explain("rise", ort_model, chelsea, params=QUICK["rise"], seed=0)
    assert seen and all(n == 1 for _, n in seen)
    assert torch.get_num_threads() == before
    with E.quiet_torch(model):  # a torch-scored model: nothing to make room for
        assert torch.get_num_threads() == before
    with E.quiet_torch(ort_model):
        with E.quiet_torch(ort_model):  # nested (two runs at once): the outer block restores
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    # cancelled half-way: the count comes back all the same
    from explorer.methods.base import run

    gen = run("rise", ort_model, chelsea, params={"n": 40, "batch_size": 4}, seed=0)
    next(gen)
    assert torch.get_num_threads() == 1
    gen.close()
    assert torch.get_num_threads() == before
