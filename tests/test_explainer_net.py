"""The trained explainer network (Stalder et al. 2022): training, checkpoints, the method, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from explorer.core.errors import ExplorerError, FileError
from explorer.methods import explain
from explorer.methods.explainer_net.method import ExplainerNet, shipped_checkpoint
from explorer.methods.explainer_net.model import Explainer, pick_taps, read_checkpoint
from explorer.methods.explainer_net.train import (
    SkippedImageWarning, TrainConfig, Trainer, area_loss, scan_folder, total_variation)
from explorer.models.layers import hook_count

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, samples_dir):
    """The sample photos, a truncated PNG and a text file."""
    d = tmp_path_factory.mktemp("train")
    for name in PHOTOS:
        shutil.copy(samples_dir / name, d / name)
    (d / "broken.png").write_bytes((samples_dir / "coffee.png").read_bytes()[:3000])
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def images(folder):
    with pytest.warns(SkippedImageWarning, match="broken.png"):
        return scan_folder(folder)


def small(**kw) -> TrainConfig:
    base = dict(batch_size=4, size=96, lr=3e-3, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_corrupt_image_is_skipped_with_a_warning(images, folder):
    assert sorted(p.name for p in images.paths) == sorted(PHOTOS)
    reasons = dict((name.split("/")[-1], why) for name, why in images.skipped)
    assert "truncated" in reasons["broken.png"] or "corrupt" in reasons["broken.png"]
    assert reasons["notes.txt"].startswith("not an image file")


def test_empty_or_unreadable_folder_is_refused_with_counts(tmp_path, samples_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileError, match="no usable training images.*holds no files"):
        scan_folder(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.txt").write_text("x")
    (bad / "b.csv").write_text("1,2")
    (bad / "c.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(SkippedImageWarning, match="c.png"):
        with pytest.raises(FileError) as err:
            scan_folder(bad)
    msg = str(err.value)
    assert str(bad) in msg and "3 file(s) skipped" in msg
    assert "2 not images by their suffix (a.txt; b.csv)" in msg and "1 unreadable (c.png:" in msg
    with pytest.raises(FileError, match="no such training folder"):
        scan_folder(tmp_path / "missing")
    with pytest.raises(FileError, match="not a folder"):
        scan_folder(samples_dir / "chelsea.png")


def test_default_taps_and_loss_terms():
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2] = 1.0
    assert total_variation(m) == pytest.approx(4 / 16)
    # a mask with exactly a_min of ones (and nothing above a_max) meets the area constraint
    masks = torch.zeros(1, 1, 10, 10)
    masks.view(-1)[:10] = 1.0
    assert float(area_loss(masks, torch.ones(1, 1, dtype=torch.bool), 0.1, 0.3)) == 0.0
    assert float(area_loss(torch.zeros(1, 1, 10, 10), torch.ones(1, 1, dtype=torch.bool), 0.1, 0.3)) == pytest.approx(0.1)
    assert float(area_loss(torch.ones(1, 1, 10, 10), torch.ones(1, 1, dtype=torch.bool), 0.1, 0.3)) == pytest.approx(0.7)


def test_a_few_augmented_steps_lower_the_loss(model, images):
    assert pick_taps(model) == ["blocks.2", "blocks.4", "bn2"]
    tr = Trainer(model, images, small())
    fixed = tr.sample_batch(4)
    assert fixed.shape == (4, 3, 96, 96)
    before = tr.evaluate(fixed)
    assert all(np.isfinite(v) for v in before.values())
    for _ in range(8):
        terms = tr.step(tr.sample_batch())
        assert np.isfinite(terms["loss"])
    after = tr.evaluate(fixed)
    assert after["loss"] < before["loss"] - 0.05, (before, after)
    assert hook_count(model.module) == 0


def test_checkpoint_reloads_identically_and_resume_continues_exactly(model, images, tmp_path):
    cfg = dict(batch_size=2, size=64)
    straight = Trainer(model, images, small(**cfg))
    list(straight.run(epochs=2))  # 2 steps per epoch (4 images, batch 2)
    first = Trainer(model, images, small(**cfg))
    ck = tmp_path / "ck.pt"
    progress = list(first.run(epochs=1, out=ck))
    assert [p.global_step for p in progress] == [1, 2] and progress[-1].saved == str(ck)
    assert read_checkpoint(ck)["training"]["epoch"] == 1
    x = first.sample_batch(2)
    loaded = Explainer.load(ck, model)
    with torch.inference_mode():
        a, _ = first.explainer.logit_maps(x)
        b, _ = loaded.logit_maps(x)
    assert torch.equal(a, b)
    resumed = Trainer.resume(ck, model, images)
    assert resumed.epoch == 1 and resumed.global_step == 2
    list(resumed.run(epochs=2))
    for k, v in straight.head.state_dict().items():
        torch.testing.assert_close(resumed.head.state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_method_gives_masks_for_any_class_from_one_forward(model, chelsea):
    method = ExplainerNet(model)
    assert method.checkpoint_path == str(shipped_checkpoint())
    exp = explain(method, model, chelsea)
    assert set(exp.maps) == {"salient", "non_target"}
    for layer, m in exp.maps.items():
        assert m.shape == chelsea.shape[:2] and m.dtype == np.float32
        assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0, layer
        assert m.max() > m.min(), layer
    assert not exp.info["cached"] and exp.info["non_target_count"] == 5
    # another class: no new forward pass, and a different mask
    other = explain(method, model, chelsea, target=exp.info["non_target_classes"][0])
    assert other.info["cached"]
    assert not np.allclose(other.maps["salient"], exp.maps["salient"])
    x = model.preprocess.to_input(chelsea)[0]
    masks = method.masks(x, [exp.target, 1, 999])
    assert masks.shape == (3, *model.preprocess.input_size)
    np.testing.assert_allclose(masks[0].numpy(), exp.raw["salient"], atol=1e-6)
    every = explain(ExplainerNet(model, others=0), model, chelsea)
    assert every.info["non_target_count"] == model.num_classes - 1
    assert (every.raw["non_target"] >= exp.raw["non_target"] - 1e-6).all()  # max over more classes
    assert hook_count(model.module) == 0


def test_checkpoint_for_another_classifier_is_refused(model, tiny_model, tmp_path):
    path = tmp_path / "other.pt"
    Explainer.new(model, width=8).save(path)
    ckpt = read_checkpoint(path)
    ckpt["model_id"] = "timm:resnet18"
    torch.save(ckpt, path)
    with pytest.raises(ExplorerError) as err:
        ExplainerNet(model, checkpoint=str(path))
    msg = str(err.value)
    assert str(path) in msg and "'timm:resnet18'" in msg and "'efficientnet_lite0'" in msg
    ckpt["model_id"], ckpt["model_fingerprint"] = "efficientnet_lite0", "0123456789abcdef0123"
    torch.save(ckpt, path)
    with pytest.raises(ExplorerError, match="different weights"):
        Explainer.load(path, model)
    with pytest.raises(ExplorerError, match=r"trained for classifier 'efficientnet_lite0'.*loaded classifier is 'tiny'"):
        ExplainerNet(tiny_model)  # the shipped checkpoint
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FileError, match="junk.pt"):
        ExplainerNet(model, checkpoint=str(tmp_path / "junk.pt"))
    with pytest.raises(FileError, match="no such explainer checkpoint"):
        ExplainerNet(model, checkpoint=str(tmp_path / "missing.pt"))


def test_cli_trains_resumes_and_refuses_bad_folders(folder, tmp_path, capsys):
    from explorer.cli import main

    ck = tmp_path / "cli.pt"
    args = ["train-explainer", str(folder), "--epochs", "1", "--batch-size", "4", "--size", "64", "--out", str(ck)]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "epoch 1/1 step 1/1: loss" in out and f"wrote {ck}" in out
    assert "warning: skipped" in err and "broken.png" in err
    assert main(["train-explainer", str(folder), "--resume", str(ck), "--epochs", "2", "--quiet"]) == 0
    assert read_checkpoint(ck)["training"]["epoch"] == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train-explainer", str(empty), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no usable training images" in capsys.readouterr().err
