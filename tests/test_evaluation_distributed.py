"""``explorer evaluate`` beyond one process: Ray tasks on a local 2-CPU cluster with one task killed mid-run,
and torchrun with two CPU processes sharing one output folder (the summary is merged once, for all)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from explorer.cli import main

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg")


@pytest.fixture(scope="module")
def tiny_ts(tmp_path_factory) -> Path:
    """A small random conv net as TorchScript (gradients, no hooks): quick to load in every worker."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                        nn.Linear(128, 10)).eval()
    path = tmp_path_factory.mktemp("model") / "tiny.ts"
    torch.jit.script(net).save(str(path))
    return path


@pytest.fixture()
def photos(tmp_path) -> Path:
    d = tmp_path / "photos"
    d.mkdir()
    for name in PHOTOS:
        shutil.copy(ROOT / "resources" / "samples" / name, d / name)
    return d


def _args(photos: Path, model: Path, out: Path) -> list[str]:
    return ["evaluate", str(photos), "--methods", "random,gradient", "--metric", "deletion,insertion",
            "--step", "128", "--model", str(model), "--input-size", "32", "--out", str(out)]


def _summary_images(out: Path) -> set[str]:
    with open(out / "summary.md") as f:
        head = f.read()
    assert f"{len(PHOTOS)} images" in head, head
    names = set()
    for p in (out / "per_image").glob("*.csv"):
        with open(p, newline="") as f:
            names |= {r["image"] for r in csv.DictReader(f)}
    return names


def _dying_once(marker: Path, photo: str = "coffee.png"):
    """``runner.evaluate_photo`` as a Ray task runs it, but killing its worker process right after the first
    CSV of ``photo``'s first attempt (the marker file says it happened): the retry must find that CSV and
    compute only the rest. A closure, so Ray pickles it by value and the worker needs no tests/ on its path;
    in the worker, ``runner.evaluate_photo`` is the real one."""

    def evaluate(model, instances, path, config, boxes, out):
        import os as _os
        from pathlib import Path as _Path

        from explorer.evaluation import runner

        def after_write(name: str, method: str) -> None:
            if name == photo and not _Path(marker).exists():
                _Path(marker).write_text(f"{name} {method} pid {_os.getpid()}\n")
                _os._exit(17)

        return runner.evaluate_photo(model, instances, path, config, boxes, out, after_write=after_write)

    return evaluate


@pytest.mark.slow
def test_ray_local_cluster_survives_a_killed_task(photos, tiny_ts, tmp_path, capsys, monkeypatch):
    import ray

    from explorer.evaluation import runner

    out = tmp_path / "out"
    marker = tmp_path / "killed.txt"
    monkeypatch.setattr(runner, "evaluate_photo", _dying_once(marker))
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        assert main(_args(photos, tiny_ts, out) + ["--ray", "local"]) == 0
        printed = capsys.readouterr().out
        # the first attempt at coffee.png died right after writing its first method's CSV ...
        assert marker.exists() and "coffee.png random" in marker.read_text()
        # ... the retry reused that CSV and computed only the other method: every result exists exactly once
        assert "(5 computed, 1 already done, 0 skipped)" in printed, printed
        assert len(list((out / "per_image").glob("*.csv"))) == 2 * len(PHOTOS)
        assert _summary_images(out) == set(PHOTOS)
        # nothing is recomputed on a second run
        assert main(_args(photos, tiny_ts, out) + ["--ray", "local"]) == 0
        assert "(0 computed, 6 already done" in capsys.readouterr().out
    finally:
        ray.shutdown()


def test_ray_address_that_does_not_answer_is_a_one_line_error(photos, tiny_ts, tmp_path, capsys):
    t0 = time.monotonic()
    assert main(_args(photos, tiny_ts, tmp_path / "o") + ["--ray", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Ray cluster answers" in err, err
    assert time.monotonic() - t0 < 60  # the probe gives up after 3 s; Ray's own retries take minutes
    assert not (tmp_path / "o" / "summary.md").exists()
    assert main(_args(photos, tiny_ts, tmp_path / "o") + ["--ray", "nonsense"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_cpu_processes_merge_the_summary_once(photos, tiny_ts, tmp_path):
    out = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "explorer"] + _args(photos, tiny_ts, out)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + ["--shard", "auto", "--device", "cpu"], capture_output=True, text=True, env=env,
                       timeout=400, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # both shards wrote their own CSVs into the shared folder; the summary covers all photos, not one half
    assert {p.name.split("__")[0] for p in (out / "per_image").glob("*.csv")} == set(PHOTOS)
    assert _summary_images(out) == set(PHOTOS)
    assert "summary deferred" in r.stdout or r.stdout.count("wrote summary.md") == 2, r.stdout


def test_the_runner_prints_nothing_its_result_says_why_the_summary_waits(photos, tmp_path, capsys):
    """Library code prints nothing (issue 32): the deferral is a message the command line shows."""
    from explorer.evaluation import runner

    files = sorted(photos.iterdir())
    assert runner.finish(tmp_path / "out", files, ["random"], 2, None) is None
    assert capsys.readouterr().out == ""
    assert runner.deferral(tmp_path / "out", files, ["random"], 2, None).startswith("summary deferred: 3 of 3")


def test_a_shard_that_ends_first_leaves_the_summary_to_the_last(photos, tiny_ts, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_args(photos, tiny_ts, out) + ["--shard", "0/2"]) == 0
    assert "summary deferred: 1 of 3 photos" in capsys.readouterr().out
    assert not (out / "summary.md").exists()
    assert main(_args(photos, tiny_ts, out) + ["--shard", "1/2"]) == 0
    assert "wrote summary.md" in capsys.readouterr().out
    assert _summary_images(out) == set(PHOTOS)
