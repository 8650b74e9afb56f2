"""``explorer evaluate`` end to end on a small folder: files, skipped images, resume, shards, errors."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from explorer.cli import main

STEP = "7168"  # 224*224/7168 = 7 steps: 8 points per curve, keeps the test fast


@pytest.fixture(scope="module")
def folder(tmp_path_factory, samples_dir):
    d = tmp_path_factory.mktemp("imgs")
    shutil.copy(samples_dir / "chelsea.png", d / "chelsea.png")
    Image.open(samples_dir / "coffee.png").convert("RGB").resize((160, 120)).save(d / "coffee.png")
    (d / "broken.jpg").write_bytes(b"not a jpeg at all")
    (d / "notes.txt").write_text("hello")
    return d


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_evaluate_folder_resume_and_shards(folder, tmp_path, capsys):
    out = tmp_path / "out"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"chelsea.png": [0, 0, 300, 451]}))
    ref = tmp_path / "ref"
    ref.mkdir()
    np.save(ref / "chelsea.npy", np.random.default_rng(0).random((300, 451)).astype(np.float32))
    argv = ["evaluate", str(folder), "--methods", "gradient,random", "--step", STEP, "--sanity-stages", "2",
            "--metric", "deletion,insertion,confidence,agreement,pointing,reference,sanity",
            "--boxes", str(boxes), "--reference", str(ref), "--out", str(out)]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "4 computed" in cap.out and "2 skipped" in cap.out and "eta" in cap.err
    per = out / "per_image"
    names = sorted(p.name for p in per.glob("*.csv"))
    assert names == ["chelsea.png__agreement.csv", "chelsea.png__gradient.csv", "chelsea.png__random.csv",
                     "coffee.png__agreement.csv", "coffee.png__gradient.csv", "coffee.png__random.csv"]
    rows = _rows(per / "chelsea.png__gradient.csv")
    get = {(r["metric"], r["quantity"]): r["value"] for r in rows if r["fraction"] == ""}
    assert get[("deletion", "step")] == STEP and get[("deletion", "substrate")] == "zero"
    assert get[("insertion", "substrate")] == "blur(kernel=11,sigma=5)"
    assert 0 <= float(get[("deletion", "auc")]) <= 1 and ("confidence", "drop") in get
    assert get[("pointing", "hit")] == "1" and ("reference", "pcc") in get and ("sanity", "spearman_final") in get
    assert float(get[("causal", "ins_minus_del")]) == pytest.approx(
        float(get[("insertion", "auc")]) - float(get[("deletion", "auc")]), abs=1e-6)
    curve = [r for r in rows if r["metric"] == "deletion" and r["fraction"] != ""]
    assert len(curve) == 8 and float(curve[0]["fraction"]) == 0 and float(curve[-1]["fraction"]) == 1
    coffee = {(r["metric"], r["quantity"]) for r in _rows(per / "coffee.png__gradient.csv")}
    assert ("pointing", "hit") not in coffee and ("reference", "pcc") not in coffee  # no box, no reference
    random_rows = {(r["metric"], r["quantity"]) for r in _rows(per / "chelsea.png__random.csv")}
    assert ("sanity", "spearman_final") not in random_rows
    agree = _rows(per / "chelsea.png__agreement.csv")
    assert {r["method"] for r in agree} == {"gradient vs random"}

    skipped = {r["image"]: r["reason"] for r in _rows(out / "skipped.csv")}
    assert set(skipped) == {"broken.jpg", "notes.txt"} and all(skipped.values())
    md = (out / "summary.md").read_text()
    assert "| gradient | 2 |" in md and "| random | 2 |" in md and "Skipped (2)" in md
    assert f"step {STEP} px" in md and "substrate zero" in md
    summ = {(r["method"], r["metric"], r["quantity"]): r for r in _rows(out / "summary.csv")}
    d = summ[("gradient", "deletion", "auc")]
    assert d["n"] == "2" and 0 <= float(d["mean"]) <= 1 and float(d["std"]) >= 0
    png = Image.open(out / "curves.png")
    assert png.size == (1000, 440) and len(np.unique(np.asarray(png.convert("RGB")).reshape(-1, 3), axis=0)) > 3
    curves = _rows(out / "curves.csv")
    assert {(r["method"], r["mode"]) for r in curves} >= {("gradient", "deletion"), ("random", "insertion")}

    # resume: nothing is recomputed; a removed result is recomputed alone
    mtimes = {p.name: p.stat().st_mtime_ns for p in per.glob("*.csv")}
    (per / "coffee.png__random.csv").unlink()
    assert main(argv) == 0
    assert "1 computed" in capsys.readouterr().out
    for p in per.glob("*.csv"):
        if p.name != "coffee.png__random.csv":
            assert p.stat().st_mtime_ns == mtimes[p.name], p.name

    # shards: 1/2 takes every second file in sorted order (chelsea.png, notes.txt); merge = --summary-only
    out2 = tmp_path / "out2"
    assert main(["evaluate", str(folder), "--methods", "random", "--metric", "deletion", "--step", STEP,
                 "--shard", "1/2", "--out", str(out2)]) == 0
    assert sorted(p.name for p in (out2 / "per_image").glob("*.csv")) == ["chelsea.png__random.csv"]
    assert (out2 / "skipped.shard1of2.csv").exists()
    capsys.readouterr()
    assert main(["evaluate", str(folder), "--summary-only", "--out", str(out2)]) == 0
    assert "| random | 1 |" in (out2 / "summary.md").read_text()


@pytest.mark.parametrize("extra, text", [
    (["--methods", "gradient", "--metric", "bogus"], "unknown metric 'bogus'"),
    (["--methods", "gradient", "--metric", "pointing"], "needs --boxes"),
    (["--methods", "gradient", "--metric", "reference"], "needs --reference"),
    (["--methods", "nope"], "unknown method 'nope'"),
    (["--methods", "gradient", "--shard", "3/2"], "--shard"),
    (["--methods", "gradient", "--param", "rise.n=10"], "not among --methods"),
    (["--summary-only"], "no results"),
])
def test_evaluate_user_errors_exit_2(folder, tmp_path, capsys, extra, text):
    assert main(["evaluate", str(folder), "--out", str(tmp_path / "o")] + extra) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_evaluate_missing_path(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none"), "--methods", "gradient", "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_evaluate_single_image_with_removal_gain(folder, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["evaluate", str(folder / "coffee.png"), "--methods", "gradient", "--metric", "removal_gain",
                 "--out", str(out)]) == 0
    rows = _rows(out / "per_image" / "coffee.png__gradient.csv")
    q = {r["quantity"]: r["value"] for r in rows if r["metric"] == "removal_gain"}
    assert -1 <= float(q["layers.salient.10%.delta_p_target"]) <= 1 and any(k.startswith("random.") for k in q)
    assert "removal_gain" in (out / "summary.md").read_text()


def test_quick_protocol_is_declared_and_recorded(folder, tmp_path):
    """--protocol quick: 32 steps a curve (33 points) instead of ~225, and every result says which protocol;
    the method's forward counts are in the rows too."""
    out = tmp_path / "q"
    assert main(["evaluate", str(folder / "chelsea.png"), "--methods", "gradient", "--metric", "deletion,insertion",
                 "--protocol", "quick", "--out", str(out)]) == 0
    rows = _rows(out / "per_image" / "chelsea.png__gradient.csv")
    for mode in ("deletion", "insertion"):
        assert sum(r["metric"] == mode and r["quantity"] == "score" for r in rows) == 33
        assert {r["value"] for r in rows if r["metric"] == mode and r["quantity"] == "protocol"} == {"quick"}
    assert any(r["metric"] == "run" and r["quantity"] == "grad_images" and float(r["value"]) >= 1 for r in rows)
    assert "protocol quick" in (out / "summary.md").read_text()


def test_a_run_from_python_takes_an_evalconfig(folder, tmp_path):
    """The same run without the command line: an EvalConfig, runner.prepare_evaluation, runner.execute."""
    from explorer.core.errors import ParamError
    from explorer.evaluation.config import EvalConfig
    from explorer.evaluation.registry import Options
    from explorer.evaluation.runner import execute, prepare_evaluation

    run = prepare_evaluation(EvalConfig(methods=["gradient", "random"], metrics=["deletion"],
                                        options=Options(step=int(STEP))),
                             folder / "coffee.png")
    assert run.units == 2 and run.photos == [folder / "coffee.png"]
    r = execute(run, tmp_path / "py")
    assert (r.photos, r.computed, r.reused, r.skipped) == (1, 2, 0, []) and r.summary is not None
    rows = _rows(tmp_path / "py" / "per_image" / "coffee.png__gradient.csv")
    assert {row["value"] for row in rows if row["quantity"] == "step"} == {STEP}
    with pytest.raises(ParamError, match="--step"):
        prepare_evaluation(EvalConfig(methods=["random"], options=Options(step=0)), folder)
