"""Continuing a sampling run from where it stopped (issue 28): the running sums, the count of samples done and
what fixes the random draws are the whole state, so a run saved partway continues instead of restarting.

A sampling method (RISE, undesirable, LIME, KernelSHAP) puts ``resume_state(...)`` in every step's
``info["state"]``: its ``fingerprint`` (method, target, seed, the input's digest and every parameter but the
batch size), the number of samples done, the batch its patterns were drawn with, and its running sums as numpy
arrays. Handed back as ``ctx.state`` (``run(..., state=...)``; the GUI's Run ▸ Continue, a restored session),
``restore`` checks it against the run about to start and returns it only when everything matches and every
array has the expected shape; otherwise the run starts from scratch and ``info["resume"]`` says why.

The generator offset needs no saved generator state: the random draws are replayed. RISE masks are drawn in
blocks whatever the batch size (``perturb.masks.rise_masks(start=...)`` draws and drops the first ones without
building them); LIME and KernelSHAP patterns are drawn per batch, so they are replayed with the stored batch
size. A continued run therefore scores exactly the samples the uninterrupted run would have, and its map
equals that run's to float rounding (the sums are float64).
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.jsonable import jsonable
from explorer.methods.base import Context, Method

VERSION = 1
IGNORED = ("batch_size",)  # parameters that do not change which samples are drawn nor their scores


def digest(x: torch.Tensor) -> str:
    return hashlib.sha1(x.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def fingerprint(method: Method, ctx: Context) -> dict[str, Any]:
    """What must be equal for a state to be continued (plain JSON values, so it survives a session file)."""
    _, _, h, w = ctx.x.shape
    return {"version": VERSION, "method": method.name, "target": int(ctx.target), "seed": int(ctx.seed),
            "input": [int(h), int(w)], "x": digest(ctx.x),
            "params": {k: jsonable(v) for k, v in sorted(method.values.items()) if k not in IGNORED}}


def same_but_batch(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """``Method.resumable`` of the sampling methods: any batch size, every other parameter equal."""
    keys = (set(old) | set(new)) - set(IGNORED)
    return all(old.get(k) == new.get(k) for k in keys)


def resume_state(fp: dict, done: int, batch: int, **sums: torch.Tensor | float) -> dict[str, Any]:
    """A step's ``info["state"]``: copies of the running sums (the method keeps adding to its tensors)."""
    arrays = {k: (v.detach().cpu().numpy().copy() if isinstance(v, torch.Tensor) and v.dim() else float(v))
              for k, v in sums.items()}
    return {"fingerprint": fp, "done": int(done), "batch": int(batch), "sums": arrays}


def restore(ctx: Context, fp: dict, total: int, shapes: dict[str, tuple[int, ...]]) -> tuple[dict | None, str]:
    """(the state, "resumed from N samples") when ``ctx.state`` continues this very run, else (None, why not)."""
    st = ctx.state
    if st is None:
        return None, ""
    if not isinstance(st, dict) or not isinstance(st.get("fingerprint"), dict):
        return None, "the state is not a sampling state: restarted"
    if st["fingerprint"] != fp:
        theirs = st["fingerprint"]
        diff = sorted(k for k in set(fp) | set(theirs) if fp.get(k) != theirs.get(k))
        if "params" in diff:
            diff.remove("params")
            a, b = fp["params"], theirs.get("params") if isinstance(theirs.get("params"), dict) else {}
            diff += sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return None, f"the state differs in {', '.join(diff)}: restarted"
    done, batch, sums = st.get("done"), st.get("batch"), st.get("sums")
    if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= total:
        return None, f"the state's sample count {done!r} is not in [0, {total}]: restarted"
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        return None, f"the state's batch size {batch!r} is not a positive integer: restarted"
    if not isinstance(sums, dict):
        return None, "the state holds no running sums: restarted"
    for k, shape in shapes.items():
        v = sums.get(k)
        if shape == ():
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        else:
            ok = (isinstance(v, np.ndarray) and v.dtype.kind == "f" and tuple(v.shape) == tuple(shape)
                  and bool(np.isfinite(v).all()))
        if not ok:
            return None, f"the state's {k!r} is not a finite {shape} array: restarted"
    return st, f"resumed from {done} samples"


def tensors(st: dict, device: torch.device, *names: str) -> list[torch.Tensor]:
    """The named running sums of a restored state as float64 tensors on ``device``."""
    return [torch.as_tensor(np.asarray(st["sums"][n], dtype=np.float64)).to(device).clone() for n in names]


def skip_batches(batches: Iterator[torch.Tensor], done: int) -> Iterator[torch.Tensor]:
    """Replay a per-batch pattern sampler: drop the first ``done`` patterns (drawn, never scored)."""
    seen = 0
    for z in batches:
        if seen >= done:
            yield z
            continue
        seen += z.shape[0]
        if seen > done:  # a stored count always ends a batch; a hand-made one may not: keep the rest
            yield z[z.shape[0] - (seen - done):]
