"""The runner records how many images a run sent through the model, with and without autograd: the
denominator of every 'method time against the bare forwards it needed' figure (benchmarks/bench_cold.py)."""

from __future__ import annotations

import numpy as np

from explorer.methods import base


def _final(method, model, params):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    return base.explain(method, model, rgb, target=1, params=params)


def test_rise_counts_one_forward_per_mask(tiny_model):
    exp = _final("rise", tiny_model, {"n": 12})
    assert exp.timings["images"] == 12 and exp.timings["grad_images"] == 0


def test_gradient_counts_its_backward_passes(tiny_model):
    exp = _final("smoothgrad", tiny_model, {"samples": 5})
    assert exp.timings["grad_images"] >= 5
