"""The faithfulness study's bookkeeping (benchmarks/bench_faithfulness.py), without a model: paired
differences, FIDO records that resume per in-filler and never mix step budgets, and the report's tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_faithfulness", ROOT / "benchmarks" / "bench_faithfulness.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(out: Path, photo: str, row: str, deletion: float, insertion: float) -> None:
    curve = {"curve": [0.0] * 101}
    rec = {"photo": photo, "row": row, "deletion": {"auc": deletion, **curve}, "insertion": {"auc": insertion, **curve},
           "seconds": 0.0}
    (out / "per_photo").mkdir(parents=True, exist_ok=True)
    (out / "per_photo" / f"{Path(photo).stem}__{row}.json").write_text(json.dumps(rec))


def test_paired_differences_cancel_what_every_row_shares(bench, tmp_path):
    # photo difficulty (0.0 / 0.4 / 0.8) moves both rows alike; rise is 0.05 better on every photo
    for k, hard in enumerate((0.0, 0.4, 0.8)):
        _row(tmp_path, f"p{k}.JPEG", "rise_paper", 0.1, 0.9 - hard)
        _row(tmp_path, f"p{k}.JPEG", "lime", 0.1, 0.85 - hard)
    _row(tmp_path, "p3.JPEG", "lime", 0.0, 1.0)  # a photo only one row has is left out of the pair
    table = bench.collect(tmp_path)["table"]
    (pair,) = bench.paired_gaps(table)
    assert (pair["a"], pair["b"], pair["photos"]) == ("rise_paper", "lime", 3)
    assert pair["mean"] == pytest.approx(0.05) and pair["sem"] == pytest.approx(0.0, abs=1e-12)


def test_fido_records_resume_per_infill_and_never_mix_step_budgets(bench, tmp_path):
    path = tmp_path / "p__fido_infills.json"
    done = {"ssr": {"area": 0.2, "insertion": 0.7}, "sdr": {"area": 0.3, "deletion": 0.01}}
    path.write_text(json.dumps({"fido": {"blur": done, "telea": {"ssr": {"skipped": "no"}, "sdr": {"skipped": "no"}}},
                                "fido_steps": 100}))
    same = SimpleNamespace(fido_steps=100, fido_infills="blur,telea")
    assert list(bench._fido_done(path, same)) == ["blur"]  # the skipped in-filler is computed again
    assert not bench._complete(path, "fido_infills", same)
    assert bench._complete(path, "fido_infills", SimpleNamespace(fido_steps=100, fido_infills="blur"))
    assert bench._fido_done(path, SimpleNamespace(fido_steps=None, fido_infills="blur")) == {}  # 300 steps: redo
    summary = bench.summarise_fido([dict(json.loads(path.read_text())["fido"], _steps=100)])
    assert summary["steps"] == [100] and list(summary["infills"]) == ["blur"]
    assert summary["infills"]["blur"] == {"ssr_area": 0.2, "ssr_insertion": 0.7, "sdr_area": 0.3, "sdr_deletion": 0.01}


def test_the_maps_table_holds_only_photos_every_row_has(bench, tmp_path):
    # a run stopped mid-photo leaves p1 with one row: the table must average both rows over p0 alone
    _row(tmp_path, "p0.JPEG", "gradcam", 0.2, 0.6)
    _row(tmp_path, "p0.JPEG", "random", 0.3, 0.3)
    _row(tmp_path, "p1.JPEG", "gradcam", 0.9, 0.1)
    assert bench.collect(tmp_path)["table"]["gradcam"]["deletion"] == [0.2, 0.9]
    table = bench.collect(tmp_path, common=True)["table"]
    assert {row: t["deletion"] for row, t in table.items()} == {"gradcam": [0.2], "random": [0.3]}


def test_fido_in_fillers_are_compared_photo_by_photo_with_blur(bench):
    def rec(area, ins):
        return {"ssr": {"area": area, "insertion": ins}, "sdr": {"area": area, "deletion": 0.02}}

    # photo difficulty moves both in-fillers alike; telea is 0.1 smaller on both photos
    recs = [{"blur": rec(0.3, 0.7), "telea": rec(0.2, 0.7), "_steps": 100},
            {"blur": rec(0.6, 0.4), "telea": rec(0.5, 0.4), "_steps": 100},
            {"blur": rec(0.5, 0.5), "_steps": 100}]  # telea missing here: not in the paired difference
    s = bench.summarise_fido(recs)
    assert s["infills"]["blur"]["ssr_area"] == pytest.approx(0.4666667)
    assert s["sem"]["telea"]["ssr_area"] == pytest.approx(0.15)
    d = s["vs_reference"]["telea"]
    assert d["ssr_area"] == {"photos": 2, "mean": pytest.approx(-0.1), "sem": pytest.approx(0.0, abs=1e-12)}
    assert d["ssr_insertion"]["mean"] == pytest.approx(0.0) and "blur" not in s["vs_reference"]
