"""Logits become scores in one place (issue 26): ``models.outputs.activate``, reached through
``LoadedModel.activate``. A method or metric that computed its own softmax would score a sigmoid (multi-label
or binary) model wrongly, so any other softmax in explorer/ must be listed here with why it is not a
class-score activation."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "explorer"
# a softmax by any name: F.softmax / .softmax / log_softmax calls, an nn.Softmax module, or one written by hand
# through logsumexp (z_c - logsumexp(z) is a log-softmax: FIDO's log-odds were one, issue 26)
CALL = re.compile(r"\b(log_)?softmax\s*\(|\bLogSoftmax\s*\(|\bSoftmax\s*\(|\blogsumexp\s*\(")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
# file -> the code fragments allowed there, each with its reason
ALLOWED = {
    "models/outputs.py": {"z.softmax(1)": "the one activation (softmax models)",
                          "torch.logsumexp(others, dim=1)": "log_odds: a softmax model's log-odds, chosen by "
                                                            "the activation like the scores"},
    "methods/cam.py": {"scores[scored].softmax(0)": "Score-CAM's channel_softmax: a softmax over channels' weights, "
                                                   "not over a model's classes"},
    "methods/explainer_net/heads.py": {"torch.cat(logits, 1).softmax(1)": "attention weights over the guided head's "
                                                                          "cells, not class scores",
                                       "z.logsumexp(1, keepdim=True)": "the explainer's per-pixel log-softmax of "
                                                                       "CAM evidence; it is trained on softmax "
                                                                       "classifiers only (check_softmax)"},
    "methods/extremal.py": {"torch.softmax(vals / temperature, dim=1)": "the smooth max of the extremal "
                                                                        "perturbation's mask, not class scores"},
    "methods/lrp_tokens.py": {"nn.functional.softmax(scores, dim=-1, dtype=torch.float32)": "the attention "
                              "weights of a Hugging Face ViT's eager attention during an LRP run, not class scores"},
    "methods/explainer_net/losses.py": {"masked.log_softmax(1)": "the paper's cross-entropy loss; the trainer refuses "
                                                                 "models whose activation is not softmax"},
}


def _code_lines(path: Path):
    in_doc = False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        quotes = line.count('"""')
        if in_doc or quotes:
            if quotes == 1:
                in_doc = not in_doc
            continue
        code = STRING.sub('""', line).split("#", 1)[0]  # help texts and messages may name the softmax
        if CALL.search(code):
            yield i, code.strip()


def test_no_softmax_outside_the_activation():
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for i, code in _code_lines(path):
            if not any(frag in code for frag in ALLOWED.get(rel, {})):
                found.append(f"{rel}:{i}: {code}")
    assert not found, "score through LoadedModel.activate instead of a softmax of your own:\n" + "\n".join(found)


def test_the_allow_list_is_still_needed():
    """Every allowed fragment still occurs (a stale entry would let a new softmax hide behind it)."""
    for rel, frags in ALLOWED.items():
        text = (ROOT / rel).read_text(encoding="utf-8")
        for frag in frags:
            assert frag in text, f"{rel}: {frag!r} is gone; drop it from ALLOWED"
