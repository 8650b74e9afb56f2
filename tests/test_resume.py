"""Runs that resume (issue 28): a sampling run stopped partway continues from its stored state (running sums,
samples done, the draws replayed) and ends on the map of an uninterrupted run with the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.cancel import CancelToken
from explorer.methods import run

SETTINGS = {
    "rise": {"n": 40, "batch_size": 4},
    "undesirable": {"n": 40, "batch_size": 4},
    "lime": {"samples": 40, "segments": 8, "batch_size": 4},
    "kernelshap": {"samples": 40, "segments": 8, "batch_size": 4},
}


def _stop_after(method, model, image, params, k: int, seed: int = 3):
    """The explanation a run leaves when cancelled after ``k`` steps (as a kill after an autosave would)."""
    token = CancelToken()
    last = None
    for i, u in enumerate(run(method, model, image, params=params, seed=seed, cancel=token)):
        last = u.explanation
        if i + 1 == k:
            token.cancel()
    return last


def _final(method, model, image, params, seed: int = 3, state=None):
    out = None
    for u in run(method, model, image, params=params, seed=seed, state=state):
        out = u
    return out.explanation


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_a_stopped_run_continues_to_the_uninterrupted_map(tiny_model, chelsea, method):
    params = SETTINGS[method]
    whole = _final(method, tiny_model, chelsea, params)
    part = _stop_after(method, tiny_model, chelsea, params, 3)
    assert part.cancelled and 0 < part.progress < 1
    state = part.info["state"]
    # RISE and undesirable store the sums of every step; LIME and KernelSHAP those of their last fit
    assert 0 < state["done"] <= part.info.get("masks", part.info.get("samples"))
    # the continuation may use another batch size: the draws do not depend on it
    cont = _final(method, tiny_model, chelsea, {**params, "batch_size": 8}, state=state)
    assert cont.info["resume"].startswith("resumed from")
    for name in whole.raw:
        np.testing.assert_allclose(cont.raw[name], whole.raw[name], rtol=1e-5, atol=1e-6)


def test_a_state_for_another_run_restarts_and_says_why(tiny_model, chelsea):
    part = _stop_after("rise", tiny_model, chelsea, SETTINGS["rise"], 2)
    other = _final("rise", tiny_model, chelsea, {**SETTINGS["rise"], "cells": 5}, state=part.info["state"])
    assert "cells" in other.info["resume"] and other.info["resume"].endswith("restarted")
    np.testing.assert_allclose(other.raw["salient"],
                               _final("rise", tiny_model, chelsea, {**SETTINGS["rise"], "cells": 5}).raw["salient"])
    wrong_seed = _final("rise", tiny_model, chelsea, SETTINGS["rise"], seed=4, state=part.info["state"])
    assert "seed" in wrong_seed.info["resume"]
    broken = dict(part.info["state"], sums={"acc": np.zeros(3), "acc2": np.zeros(3)})
    assert "restarted" in _final("rise", tiny_model, chelsea, SETTINGS["rise"], state=broken).info["resume"]


def test_rise_masks_from_an_offset_are_the_tail_of_the_sequence():
    import torch

    from explorer.perturb.masks import rise_masks

    def masks(start, batch):
        g = torch.Generator().manual_seed(5)
        return torch.cat(list(rise_masks(45, (20, 24), 4, 0.5, batch, torch.device("cpu"), g, start=start)))

    full = masks(0, 7)
    for start in (0, 5, 16, 17, 44):
        assert torch.equal(masks(start, 3), full[start:])


def _through_a_session_file(tmp_path, image, exp):
    """``exp`` saved in a session file and read back (its state: arrays in the NPZ, tuples tagged)."""
    from explorer.io.session_file import load_session, save_session
    from explorer.session.document import Session

    s = Session()
    s.set_image(image, "photo.png")
    run = s.new_run(exp.method, exp.params)
    s.accept(run.id, run.generation, exp, done=True)
    save_session(tmp_path / "s.json", s)
    return load_session(tmp_path / "s.json").runs[run.id].explanation


def test_a_borex_run_stopped_partway_continues_through_a_session_file(tiny_model, chelsea, tmp_path):
    """BOREx keeps its probes (and the prior it computed) in its state: replayed, they continue the run; its
    fingerprint holds tuples, which the session file keeps as tuples."""
    params = {"prior": "rise", "prior_params": "n=20,cells=4", "iterations": 5}
    whole = _final("borex", tiny_model, chelsea, params)
    token, part = CancelToken(), None
    for u in run("borex", tiny_model, chelsea, params=params, seed=3, cancel=token):
        part = u.explanation
        if part.info.get("iteration") == 2:
            token.cancel()
    assert part.cancelled and part.info["iteration"] == 2
    back = _through_a_session_file(tmp_path, chelsea, part)
    assert back.info["state"]["fingerprint"] == part.info["state"]["fingerprint"]
    cont = _final("borex", tiny_model, chelsea, params, state=back.info["state"])
    assert cont.info["resume"].startswith("resumed from 2"), cont.info["resume"]
    assert cont.info["probes"] == whole.info["probes"]
    np.testing.assert_allclose(cont.raw["refined"], whole.raw["refined"], rtol=1e-5, atol=1e-6)


def test_a_rise_state_survives_a_session_file(tiny_model, chelsea, tmp_path):
    part = _stop_after("rise", tiny_model, chelsea, SETTINGS["rise"], 2)
    back = _through_a_session_file(tmp_path, chelsea, part)
    cont = _final("rise", tiny_model, chelsea, SETTINGS["rise"], state=back.info["state"])
    assert cont.info["resume"] == "resumed from 8 samples"
    whole = _final("rise", tiny_model, chelsea, SETTINGS["rise"])
    np.testing.assert_allclose(cont.raw["salient"], whole.raw["salient"], rtol=1e-5, atol=1e-6)
