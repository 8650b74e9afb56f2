"""The trained explainer network (Stalder et al. 2022): training, checkpoints, the method, bad input.

Everything trains with tiny settings; the real training (``explorer train-explainer`` on ../shared) never
runs here. Tests that read the shared photos skip when they are absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.core.errors import ExplorerError, FileError
from explorer.methods import explain
from explorer.methods.explainer_net.heads import ClassHead, TiedHead
from explorer.methods.explainer_net.losses import part_targets
from explorer.methods.explainer_net.method import ExplainerNet, shipped_checkpoint
from explorer.methods.explainer_net.model import Explainer, pick_taps, read_checkpoint
from explorer.methods.explainer_net.train import (
    ImageSet,
    SkippedImageWarning,
    TrainConfig,
    Trainer,
    area_loss,
    compose,
    scan_folder,
    split_holdout,
    total_variation,
)
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
    present = torch.ones(1, 1, dtype=torch.bool)
    assert float(area_loss(torch.zeros(1, 1, 10, 10), present, 0.1, 0.3)) == pytest.approx(0.1)
    assert float(area_loss(torch.ones(1, 1, 10, 10), present, 0.1, 0.3)) == pytest.approx(0.7)


def test_a_few_augmented_steps_lower_the_loss(model, images):
    assert pick_taps(model) == ["blocks.2", "blocks.4", "bn2"]
    tr = Trainer(model, images, small())
    fixed = tr.sample_batch(4)
    assert fixed[0].shape == (4, 3, 96, 96) and fixed[1] == [[(0, 0, 96, 96)]] * 4
    before = tr.evaluate(fixed)
    assert all(np.isfinite(v) for v in before.values())
    for _ in range(8):
        terms = tr.step(tr.sample_batch())
        assert np.isfinite(terms["loss"])
    after = tr.evaluate(fixed)
    assert after["loss"] < before["loss"] - 0.05, (before, after)
    assert hook_count(model.module) == 0


def test_checkpoint_reloads_identically_and_resume_continues_exactly(model, images, tmp_path):
    cfg = dict(batch_size=2, size=64, pair=0.4, quad=0.3)  # composites draw from the generator too
    straight = Trainer(model, images, small(**cfg))
    list(straight.run(epochs=2))  # 2 steps per epoch (4 images, batch 2)
    first = Trainer(model, images, small(**cfg))
    ck = tmp_path / "ck.pt"
    progress = list(first.run(epochs=1, out=ck))
    assert [p.global_step for p in progress] == [1, 2] and progress[-1].saved == str(ck)
    assert read_checkpoint(ck)["training"]["epoch"] == 1
    x = first.sample_batch(2)[0]
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
    ExplainerNet.clear_cache()
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
    with pytest.raises(ExplorerError,
                       match=r"trained for classifier 'efficientnet_lite0'.*loaded classifier is 'tiny'"):
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


SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenet-sample"


def _forwards(model):
    """A counter of the classifier's forward passes (a hook on its module); remove with .remove()."""
    calls = []
    handle = model.module.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_a_new_method_instance_reuses_the_cached_maps(model, chelsea):
    """The GUI builds a method per run: picking another class must not run the classifier again."""
    ExplainerNet.clear_cache()
    first = explain(ExplainerNet(model), model, chelsea)
    calls, handle = _forwards(model)
    try:
        again = explain(ExplainerNet(model), model, chelsea, target=first.info["non_target_classes"][0])
    finally:
        handle.remove()
    assert again.info["cached"] and not first.info["cached"]
    assert sum(calls) == 0  # prepare_context() scores the image only when no target is given


def test_class_maps_go_through_the_classifiers_own_last_layer(model, chelsea):
    """An untrained tied head is the per-pixel log-softmax of CAM at stride 8, scale * (z_c - logsumexp z) +
    shift with z_c = W_c . upsample(F) + b_c, for every class, seen in training or not; a class's map moves
    with its row of the classifier's weights."""
    exp = Explainer.new(model, width=8)
    assert isinstance(exp.head, TiedHead) and exp.taps[-1] == "bn2"
    x = model.preprocess.to_input(chelsea)[0]
    from explorer.models.layers import recording

    with torch.inference_mode(), recording({"bn2": model.module.bn2}) as store:
        model(x)
    F_ = torch.nn.functional.interpolate(store["bn2"], size=(28, 28), mode="bilinear", align_corners=False)
    W, b = model.module.classifier.weight, model.module.classifier.bias
    cam = torch.einsum("kd,bdhw->bkhw", W, F_) + b[None, :, None, None]
    with torch.inference_mode():
        s, logits = exp.logit_maps(x)
    scale, shift = float(exp.head.log_scale.detach().exp()), float(exp.head.shift.detach())
    torch.testing.assert_close(s, (cam - cam.logsumexp(1, keepdim=True)) * scale + shift, rtol=1e-4, atol=1e-3)
    # goldfish (class 1, odd: no photo of it in the shared folder; weak on a cat, so the softmax's normaliser
    # hardly moves): doubling its row of the classifier's weights moves its own map and barely the others
    exp.head.weight[1] = exp.head.weight[1] * 2
    with torch.inference_mode():
        s2, _ = exp.logit_maps(x)
    moved = (s2 - s)[0].abs().flatten(1).amax(-1)
    assert int(moved.argmax()) == 1 and float(moved[1]) > 5 * float(torch.cat([moved[:1], moved[2:]]).max())


def test_version_1_checkpoints_are_still_read(model, chelsea, tmp_path):
    taps = pick_taps(model)
    old = Explainer(model, ClassHead([40, 112, 1280], model.num_classes, 8), taps)
    path = old.save(tmp_path / "v1.pt")
    assert read_checkpoint(path)["version"] == 1
    exp = explain(ExplainerNet(model, checkpoint=str(path)), model, chelsea)
    assert exp.maps["salient"].shape == chelsea.shape[:2]
    with pytest.raises(ExplorerError, match="version-1"):  # read, not trained further
        Explainer.load(path, model).evidence(model.preprocess.to_input(chelsea)[0])


def test_corrupt_or_damaged_checkpoints_are_clear_errors(model, tmp_path):
    good = Explainer.new(model, width=8).save(tmp_path / "good.pt")
    raw = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileError, match=r"cut\.pt.*not a readable explainer checkpoint"):
        ExplainerNet(model, checkpoint=str(tmp_path / "cut.pt"))
    ckpt = read_checkpoint(good)
    ckpt["head"]["delta.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, tmp_path / "shape.pt")
    with pytest.raises(FileError, match=r"shape\.pt.*do not fit"):
        Explainer.load(tmp_path / "shape.pt", model)
    ckpt = read_checkpoint(good)
    ckpt["version"] = 99
    torch.save(ckpt, tmp_path / "new.pt")
    with pytest.raises(FileError, match="version 99 is newer"):
        Explainer.load(tmp_path / "new.pt", model)
    ckpt["version"] = "two"
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(FileError, match="not a number"):
        Explainer.load(tmp_path / "bad.pt", model)


def test_held_out_split_is_deterministic_and_recorded(model, samples_dir, tmp_path):
    d = tmp_path / "ten"
    d.mkdir()
    for i in range(10):
        shutil.copy(samples_dir / PHOTOS[i % 4], d / f"img{i:02d}.png")
    images = scan_folder(d)
    train, held = split_holdout(images, 5)
    assert [p.name for p in held] == ["img04.png", "img09.png"] and len(train) == 8
    assert not set(train.paths) & set(held)
    tr = Trainer(model, images, small(hold_out_every=5, batch_size=2, size=64))
    assert len(tr.images) == 8 and [p.name for p in tr.held_out] == ["img04.png", "img09.png"]
    with pytest.raises(FileError, match="leaves nothing to train on"):
        split_holdout(ImageSet(images.root, images.paths[:1]), 2, offset=0)
    path = tr.save(tmp_path / "ck.pt")
    assert read_checkpoint(path)["meta"]["trained_on"]["held_out"] == ["img04.png", "img09.png"]


def test_composites_tile_photos_and_label_each_part(model, chelsea, coffee):
    g = torch.Generator().manual_seed(0)
    pair = compose([chelsea, coffee], 96, g)
    assert pair.image.shape == (3, 96, 96) and pair.parts == [(0, 0, 96, 48), (0, 48, 96, 48)]
    quad = compose([chelsea, coffee, chelsea, coffee], 96, g, vertical=True)
    assert quad.parts == [(0, 0, 48, 48), (0, 48, 48, 48), (48, 0, 48, 48), (48, 48, 48, 48)]
    stacked = compose([chelsea, coffee], 224, torch.Generator().manual_seed(1), vertical=True, min_scale=1.0, jitter=0)
    x = model.preprocess.normalise(stacked.image[None])
    with torch.inference_mode():
        logits = model(x)
        q = part_targets(model, x, [stacked.parts], logits, 3, 0.25)[0]
        top_cat = int(model(x[..., :112, :]).argmax())
        top_cup = int(model(x[..., 112:, :]).argmax())
    assert float(q.sum()) == pytest.approx(1.0)
    assert top_cat != top_cup and q[top_cat] > 0 and q[top_cup] > 0


def test_cli_writes_the_training_curve(folder, tmp_path):
    from explorer.cli import main

    ck, png = tmp_path / "c.pt", tmp_path / "curve.png"
    assert main(["train-explainer", str(folder), "--epochs", "1", "--batch-size", "4", "--size", "64",
                 "--pair", "0.5", "--quad", "0.5", "--out", str(ck), "--curve", str(png), "--quiet"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_checkpoint(ck)["training"]["config"]["pair"] == 0.5


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/imagenet-sample is absent")
def test_shipped_checkpoint_is_class_specific_on_classes_it_never_saw(model, chelsea, rocket):
    """chelsea (Egyptian cat, class 285) | rocket side by side: the sample photos are not in the training
    folder, and odd classes have no photo there. Each class's mask keeps most of its mass on its own half."""
    ckpt = read_checkpoint(shipped_checkpoint())
    assert ckpt["version"] == 2 and ckpt["meta"]["trained_on"]["hold_out_every"] == 5
    pre = model.preprocess
    a, _ = pre.input_rgb(chelsea)
    b, _ = pre.input_rgb(rocket)
    x = torch.cat([pre.normalise(a), pre.normalise(b)], -1)  # (1, 3, 224, 448)
    exp = Explainer.load(shipped_checkpoint(), model)
    with torch.inference_mode():
        top_a, top_b = int(model(x[..., :224]).argmax()), int(model(x[..., 224:]).argmax())
        masks = exp.class_masks(x, [top_a, top_b])[0]
    assert top_a == 285
    share_a = float(masks[0, :, :224].sum() / masks[0].sum())
    share_b = float(masks[1, :, 224:].sum() / masks[1].sum())
    assert share_a > 0.8 and share_b > 0.8, (share_a, share_b)
