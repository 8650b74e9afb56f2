"""The metric registry (issue 19): every metric reachable by name, sMPRT / eMPRT on a small net, and the
CLI's refusals of inputs that name photos the folder does not hold or settings out of range."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.cli import main
from explorer.evaluation import registry
from explorer.evaluation.config import metric_names
from explorer.evaluation.mprt import cumulative_stages, discrete_entropy, emprt, smprt

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rgb():
    return (np.random.default_rng(1).random((40, 48, 3)) * 255).astype(np.uint8)


def test_every_registered_metric_is_a_cli_metric():
    assert set(registry.metric_names()) <= set(metric_names())
    for name in ("road", "pixel_flipping", "region_perturbation", "smprt", "emprt"):
        assert name in metric_names()


@pytest.mark.parametrize("name", ["deletion", "insertion", "confidence", "road", "pixel_flipping",
                                  "region_perturbation", "removal_gain"])
def test_registry_computes_and_flattens(tiny_model, rgb, name):
    sal = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    opts = registry.Options(step=64, region_count=10, road_fractions=(0.25, 0.75))
    res = registry.compute(name, registry.MetricCall(tiny_model, rgb, sal, options=opts, maps={"salient": sal}))
    rows = registry.rows(name, res)
    assert rows and all(r[0] == name for r in rows)
    values = [r[2] for r in rows if isinstance(r[2], float)]
    assert all(np.isfinite(values))
    if name == "road":
        assert res["combined"] == pytest.approx((res["lerf"] - res["morf"]) / 2)
        assert {r[1] for r in rows if r[3] != ""} == {"morf.score", "lerf.score"}


def test_method_rerunning_metrics_need_the_method_and_weights(tiny_model, rgb):
    sal = np.zeros((32, 32), np.float32)
    with pytest.raises(Exception, match="give the method's name"):
        registry.compute("emprt", registry.MetricCall(tiny_model, rgb, sal))
    with pytest.raises(Exception, match="unknown metric"):
        registry.spec("nope")
    with pytest.raises(Exception, match="region-patch"):
        registry.Options(region_patch=0).validate()


def test_smprt_and_emprt_leave_the_shared_model_alone(tiny_model, rgb):
    before = {k: v.clone() for k, v in tiny_model.module.state_dict().items()}
    r = smprt(tiny_model, rgb, "gradient", 3, n_stages=2, samples=2)
    assert len(r["stages"]) == 2 and -1 <= r["smprt"] <= 1 and r["smprt_last"] == r["stages"][-1]["spearman"]
    assert r["stages"][0]["randomised_from"] == "0"  # bottom-up: the input convolution first
    e = emprt(tiny_model, rgb, "gradient", 3)
    assert e["n_layers"] == 4 and np.isfinite(e["emprt"])
    assert e["emprt"] == pytest.approx((e["entropy_randomised"] - e["entropy_original"]) / e["entropy_original"])
    for k, v in tiny_model.module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_entropy_and_stages_match_quantus_conventions():
    from quantus.functions.complexity_func import discrete_entropy as q_entropy

    a = np.random.default_rng(0).normal(size=(1, 32, 32))
    assert discrete_entropy(a) == pytest.approx(q_entropy(a=a, x=a, n_bins=100))
    assert cumulative_stages(list("abcde"), 2) == [["a", "b", "c"], ["d", "e"]]
    assert cumulative_stages(list("abcde"), 2, "top_down") == [["e", "d", "c"], ["b", "a"]]


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    shutil.copy(ROOT / "resources" / "samples" / "chelsea.png", d / "chelsea.png")
    return d


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_inputs_naming_photos_not_in_the_folder_are_refused(folder, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"chelsea.png": [0, 0, 10, 10], "dog.jpg": [1, 1, 5, 5]}))
    out = tmp_path / "out"
    base = ["evaluate", str(folder), "--methods", "random", "--out", str(out)]
    assert main(base + ["--metric", "pointing", "--boxes", str(boxes)]) == 2
    err = _err(capsys)
    assert "boxes.json" in err and "dog.jpg" in err and "not in the folder" in err
    ref = tmp_path / "ref"
    ref.mkdir()
    np.save(ref / "chelsea.npy", np.zeros((4, 4), np.float32))
    np.save(ref / "cat.npy", np.zeros((4, 4), np.float32))
    assert main(base + ["--metric", "reference", "--reference", str(ref)]) == 2
    assert "cat.npy" in _err(capsys)
    assert main(base + ["--metric", "road", "--region-patch", "0"]) == 2
    assert "region-patch" in _err(capsys)
    assert not (out / "summary.md").exists()  # nothing partial left looking complete
