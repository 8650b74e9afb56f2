"""The version-3 explainer head (heads.GuidedHead): guided upsampling of the classifier's own last feature map.

What must hold: an untrained guided head is (close to) the version-2 design's starting point; the guide only
ever mixes the classifier's own evidence over each fine pixel's neighbouring coarse cells, with weights that
sum to one, and the coarse-grid shortcut that computes it is exact; a guided head trains, saves as version 3,
reloads identically and resumes as a guided head.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from explorer.methods.explainer_net.heads import GuidedHead, _neighbour_index
from explorer.methods.explainer_net.model import Explainer, backbone, read_checkpoint
from explorer.methods.explainer_net.train import TrainConfig, Trainer, scan_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory, samples_dir):
    d = tmp_path_factory.mktemp("guided")
    for name in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copy(samples_dir / name, d / name)
    return scan_folder(d)


def _input(model, rgb):
    return model.preprocess.to_input(rgb)[0]


def test_an_untrained_guided_head_starts_where_the_tied_head_starts(model, chelsea):
    x = _input(model, chelsea)
    tied = Explainer.new(model, width=8, kind="tied")
    guided = Explainer.new(model, width=8, kind="guided")
    assert isinstance(guided.head, GuidedHead) and guided.taps == tied.taps
    with torch.inference_mode():
        a, _ = tied.logit_maps(x)
        b, _ = guided.logit_maps(x)
    # the Gaussian prior is a little softer than bilinear weights: the maps agree, not bit for bit
    r = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
    assert float(r) > 0.99
    top = int(a[0].mean((1, 2)).argmax())
    assert int(b[0].mean((1, 2)).argmax()) == top


def test_neighbours_bracket_every_fine_pixel():
    for fine, coarse in ((28, 7), (20, 5), (30, 8), (7, 7)):
        centre, logp = _neighbour_index(fine, coarse)
        u = (torch.arange(fine) + 0.5) * coarse / fine - 0.5
        assert torch.all(centre - 1 >= 0) and torch.all(centre - 1 <= coarse - 1)
        # the two cells bilinear interpolation reads are among the three neighbours
        lo = torch.floor(u).clamp(0, coarse - 1) + 1
        assert torch.all((lo >= centre - 1) & (lo + 1 <= centre + 1 + 1))
        assert torch.allclose(logp[:, 1], logp.max(1).values)  # the nearest cell has the largest prior (or ties)


def test_the_guide_is_a_convex_mix_of_neighbouring_cells_and_the_shortcut_is_exact(model, chelsea):
    exp = Explainer.new(model, width=8, kind="guided")
    head = exp.head
    torch.manual_seed(1)
    torch.nn.init.normal_(head.query.weight, std=2.0)  # a guide far from its prior
    x = _input(model, chelsea)
    with torch.inference_mode():
        feats, _ = backbone(model, x, exp.taps)
        a, cells = head.guide(feats)
        z, _, _ = head.evidence(feats)
    assert a.shape[1] == 9 and torch.allclose(a.sum(1), torch.ones_like(a[:, 0]), atol=1e-5)
    assert float(a.max(1).values.mean()) < 0.9  # the random guide really mixes
    v = F.pad(feats[-1], (1, 1, 1, 1), mode="replicate")
    f = sum(a[:, n:n + 1] * v.index_select(2, r).index_select(3, c) for n, (r, c) in enumerate(cells))
    direct = torch.einsum("kd,bdhw->bkhw", head.weight, f) + head.bias[None, :, None, None]
    torch.testing.assert_close(z, direct, rtol=1e-4, atol=1e-4)
    # every fine pixel's evidence lies between the smallest and largest of the classifier's own cells
    zc = torch.einsum("kd,bdhw->bkhw", head.weight, feats[-1]) + head.bias[None, :, None, None]
    lo, hi = zc.flatten(2).min(-1).values, zc.flatten(2).max(-1).values
    assert torch.all(z.flatten(2) >= lo[..., None] - 1e-4) and torch.all(z.flatten(2) <= hi[..., None] + 1e-4)


def test_a_guided_head_trains_saves_as_version_3_and_resumes(model, photos, tmp_path):
    cfg = dict(batch_size=2, size=64, lr=3e-3, seed=0, head="guided")
    straight = Trainer(model, photos, TrainConfig(**cfg))
    list(straight.run(epochs=2))
    first = Trainer(model, photos, TrainConfig(**cfg))
    ck = tmp_path / "guided.pt"
    list(first.run(epochs=1, out=ck))
    assert read_checkpoint(ck)["version"] == 3
    assert torch.count_nonzero(first.head.query.weight) > 0  # the guide moved off its prior
    loaded = Explainer.load(ck, model)
    assert isinstance(loaded.head, GuidedHead)
    x = first.sample_batch(2)[0]
    with torch.inference_mode():
        torch.testing.assert_close(first.explainer.logit_maps(x)[0], loaded.logit_maps(x)[0], rtol=0, atol=0)
    resumed = Trainer.resume(ck, model, photos)
    assert resumed.cfg.head == "guided"
    list(resumed.run(epochs=2))
    for k, v in straight.head.state_dict().items():
        torch.testing.assert_close(resumed.head.state_dict()[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_an_unknown_head_kind_is_refused(model):
    with pytest.raises(ValueError, match="unknown explainer head kind 'class'"):
        Explainer.new(model, width=8, kind="class")


def test_cli_trains_a_guided_head_and_keeps_it_on_resume(photos, tmp_path, capsys):
    from explorer.cli import main

    ck = tmp_path / "cli_guided.pt"
    folder = str(photos.root)
    assert main(["train-explainer", folder, "--head", "guided", "--epochs", "1", "--batch-size", "4", "--size", "64",
                 "--out", str(ck), "--quiet"]) == 0
    assert read_checkpoint(ck)["version"] == 3
    assert main(["train-explainer", folder, "--resume", str(ck), "--head", "tied", "--epochs", "2"]) == 2
    assert "--head cannot change when resuming" in capsys.readouterr().err
    assert main(["train-explainer", folder, "--resume", str(ck), "--epochs", "2", "--quiet"]) == 0
    assert read_checkpoint(ck)["version"] == 3 and read_checkpoint(ck)["training"]["epoch"] == 2
