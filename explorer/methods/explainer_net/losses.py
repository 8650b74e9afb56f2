"""The training objective of Stalder et al. 2022 (docs/methods.md §6), with the paper's weights.

L = L_c + λ_e L_e + λ_a L_a + λ_tv L_tv + λ_m mean(m) + λ_nc mean(n), λ_e = λ_a = λ_tv = 1, λ_m = 0.1,
λ_nc = 0.3, area bounds a_min = 0.05, a_max = 0.3. Target mask m = σ(max_{c∈y} S_c), non-target mask
n = σ(max_{c∉y} S_c); masked images are m⊙x and (1−m)⊙x in the normalised space, as in the official code.

Where this differs from the paper (this project's choices: a folder has no labels, the classifier is a
1000-class softmax model, and training has to fit a CPU):
- labels y are the classifier's own confident predictions on each *part* of a frame (a composite holds 2 or
  4 photos): per part its top-k classes (k = 3) with probability >= a threshold (0.25), always its top-1;
- L_c is the cross-entropy of f(m⊙x) against the mean over parts of each part's probabilities restricted to
  its labels and renormalised (one part, one label: the paper's single-label cross-entropy);
- L_e is, as in the official code, minus the entropy of softmax f((1−m)⊙x) averaged over the batch *and the
  classes* (−H/K);
- the non-target max runs over the ``candidates`` classes the classifier scores highest on the frame, not
  over all K: a class the classifier gives almost no logit has a low map almost everywhere (the maps average
  into the logits through the classifier's own last layer, ``heads.TiedHead``), and all K maps per training
  pixel would cost more than the rest of the step;
- total variation is the mean absolute horizontal plus vertical difference.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from explorer.methods.explainer_net.model import Explainer


def pseudo_labels(probs: torch.Tensor, topk: int, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The classifier's confident classes: (idx (B, k), valid (B, k), multi-hot y (B, K)); top-1 always valid."""
    v, idx = probs.topk(min(topk, probs.shape[1]), dim=1)
    valid = v >= threshold
    valid[:, 0] = True
    y = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, idx, valid)
    return idx, valid, y


def part_targets(model, x: torch.Tensor, parts: list[list[tuple[int, int, int, int]]], frame_logits: torch.Tensor,
                 topk: int, threshold: float) -> torch.Tensor:
    """(B, K) target distribution q: per frame the mean over its parts of each part's probabilities restricted
    to the part's pseudo-labels and renormalised. A one-part frame uses the frame's own logits; the parts of
    composites are classified alone, grouped by shape (one batched forward per shape)."""
    probs = model.activate(frame_logits)
    q = torch.zeros_like(probs)
    groups: dict[tuple[int, int], list[tuple[int, tuple[int, int, int, int]]]] = {}
    for b, boxes in enumerate(parts):
        if len(boxes) == 1:
            q[b] = _restricted(probs[b:b + 1], topk, threshold)[0]
        else:
            for box in boxes:
                groups.setdefault((box[2], box[3]), []).append((b, box))
    for items in groups.values():
        crops = torch.stack([x[b, :, t:t + h, l:l + w] for b, (t, l, h, w) in items])
        with torch.no_grad():
            part_probs = model.activate(model(crops))
        restricted = _restricted(part_probs, topk, threshold)
        for (b, _), r in zip(items, restricted):
            q[b] += r / len(parts[b])
    return q


def _restricted(probs: torch.Tensor, topk: int, threshold: float) -> torch.Tensor:
    _, _, y = pseudo_labels(probs, topk, threshold)
    r = probs * y
    return r / r.sum(1, keepdim=True)


def total_variation(m: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of |horizontal difference| + |vertical difference|, averaged over the batch."""
    hw = m.shape[-1] * m.shape[-2]
    dx = (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(1).sum(1)
    dy = (m[..., 1:, :] - m[..., :-1, :]).abs().flatten(1).sum(1)
    return ((dx + dy) / hw).mean()


def area_loss(masks: torch.Tensor, valid: torch.Tensor, a_min: float, a_max: float) -> torch.Tensor:
    """The paper's area constraint on each labelled class mask (B, k, H, W): the values sorted in decreasing
    order are pushed up to 1 on the first a_min·HW pixels and down to 0 after the first a_max·HW pixels;
    per mask the mean over pixels, summed over the image's labels, averaged over the batch."""
    flat = masks.flatten(2)
    n = flat.shape[-1]
    s = flat.sort(dim=-1, descending=True).values
    rank = torch.arange(n, device=s.device)
    lo = (rank < int(n * a_min)).to(s.dtype)
    hi = (rank < int(n * a_max)).to(s.dtype)
    per = F.relu(lo - s).mean(-1) + F.relu(s - hi).mean(-1)
    return (per * valid.to(per.dtype)).sum(1).mean()


def explainer_losses(explainer: Explainer, x: torch.Tensor, parts: list[list[tuple[int, int, int, int]]],
                     cfg: Any) -> dict[str, torch.Tensor]:
    """Every loss term for a normalised batch ``x`` (B, 3, H, W) whose frames hold ``parts``; ``loss`` is the
    weighted total. ``cfg`` is a TrainConfig (weights, bounds, label settings, candidates)."""
    model, head = explainer.model, explainer.head
    z, scale, shift, logits = explainer.evidence(x)
    HW = tuple(x.shape[-2:])
    q = part_targets(model, x, parts, logits, cfg.topk, cfg.threshold)
    y = q > 0
    L = int(y.sum(1).max())
    lab_idx = (y.float() * 2 + q).topk(L, dim=1).indices  # the labels first; padding (valid False) after
    lab_valid = y.gather(1, lab_idx)
    M = min(int(cfg.candidates), logits.shape[1] - L)
    cand = logits.masked_fill(y, float("-inf")).topk(M, dim=1).indices
    S = head.maps(z, scale, shift, torch.cat([lab_idx, cand], 1))
    S_lab = S[:, :L]
    t_low = S_lab.masked_fill(~lab_valid[:, :, None, None], float("-inf")).amax(1, keepdim=True)
    n_low = S[:, L:].amax(1, keepdim=True)
    m = explainer.upsample(t_low, HW).sigmoid()
    n = explainer.upsample(n_low, HW).sigmoid()
    B = x.shape[0]
    out = model(torch.cat([m * x, (1 - m) * x])).float()
    masked, inverted = out[:B], out[B:]
    # the paper's loss is a cross-entropy and an entropy over a softmax classifier's classes (the trainer
    # refuses other activations), so these two are the model's activation written in log form
    l_c = -(q * masked.log_softmax(1)).sum(1).mean()
    p_inv = model.activate(inverted)
    l_e = (p_inv * p_inv.clamp_min(1e-16).log()).mean()  # −(entropy elements).mean() over batch and classes
    l_a = area_loss(explainer.upsample(S_lab, HW).sigmoid(), lab_valid, cfg.a_min, cfg.a_max)
    l_tv = total_variation(m) + total_variation(n)
    l_m, l_nc = m.mean(), n.mean()
    loss = (l_c + cfg.lambda_e * l_e + cfg.lambda_a * l_a + cfg.lambda_tv * l_tv + cfg.lambda_m * l_m
            + cfg.lambda_nc * l_nc)
    return {"loss": loss, "cls": l_c, "ent": l_e, "area": l_a, "tv": l_tv, "mask": l_m, "nontarget": l_nc,
            "labels": lab_valid.sum(1).float().mean()}
