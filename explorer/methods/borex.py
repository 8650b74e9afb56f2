"""BOREx: refine any heat map by Gaussian-process regression and Bayesian optimisation.

Kikuchi, Uchida, Waga, Suenaga 2022, "BOREx: Bayesian-Optimization-Based Refinement of Saliency Map for
Image- and Video-Classification Models" (arXiv 2210.17130). See docs/methods.md §5.
The GP itself is ``gaussian_process.py``; reading a prior map, ``prior_maps.py``.

What is computed (black box, class scores only):

- Prior h: a map from another result (``ctx.priors``), a ``.npy`` file, or a method run first; rescaled so
  mean|h| = 0.1 (``normalise``). An all-zero map stays zero (a flat prior).
- Search space (y, x, s): every pixel of the model input × window half-widths s (30, 45, 60, 75 at 224²,
  scaled with the input's shorter side). A query is the square window of side 2s centred at (y, x).
- One query = two forwards: score = P_c(only the window kept) − P_c(the window removed), "removed" being
  zero in normalised space (the dataset mean colour).
- A GP on the residuals r = score − h(y, x): Matérn kernel (ν = 1.5, or 2.5), amplitude 1, ARD length
  scales (12, 12, 10) bounded to [1, 20], noise α = 0.01 added to the diagonal; the length scales are
  refitted after every query by maximising the log marginal likelihood (L-BFGS-B on log ℓ with the
  analytic gradient, warm-started from the previous values, like scikit-learn without restarts).
- Acquisition: UCB a = μ + h + κσ (κ = 10) over the WHOLE grid every iteration, vectorised and chunked
  (never more than ``_CHUNK_ELEMENTS`` kernel entries at once, so a 1024² input with 4 scales, 4M
  candidates, runs in bounded memory). First query: argmax h at the smallest s.
- Each iteration yields ``refined`` = mean over s of box_(2s+1)²(μ_s + h) and ``uncertainty`` = mean over
  s of box_(2s+1)²(σ_s), plus the probed windows in ``info["probes"]`` as (y, x, s, score) in input pixels.

Choices that are this project's own (the paper's text leaves them open or we could not read them):

- GP coordinates are in "224² units": (y·f, x·f, s₂₂₄) with f = 224 / min(h, w) and s₂₂₄ the nominal
  half-width, so the length scales mean the same thing at every input size.
- With a flat prior (no maximum) the first query is at the centre rather than at pixel (0, 0).
- Jitter (as in the public implementation we read): each probe's GP coordinates get Gaussian noise of
  std (1, 1, 0.5) so that repeated grid points do not make the kernel matrix singular; the window itself
  is probed on the grid. The noise is drawn from the run's seed (there is no separate ``seed`` parameter:
  the runner's seed drives it and the prior method, and is recorded with every result).
- Resume: the last step's ``info["state"]`` (numpy arrays and plain values, picklable) holds the probes, the
  length-scale history and the prior. Passed back as ``ctx.state`` (``run(..., state=...)``) with the same
  image, target, prior and GP settings, a run with more iterations continues from the stored probes (only
  the new queries cost forwards), and one with fewer iterations replays the first ones exactly (no
  forwards). Anything that differs restarts from scratch, and ``info["resume"]`` says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.errors import ExplorerError, ParamError, UnknownNameError
from explorer.core.params import Param, Params, parse_assignments
from explorer.core.types import REFINED, UNCERTAINTY, LayerSpec, Needs, Step
from explorer.methods.base import Context, Method, get_method, method_names, register
from explorer.methods.gaussian_process import GP, LENGTH_BOUNDS, matern_, refit_length_scales
from explorer.methods.prior_maps import map_to_input, read_prior_file
from explorer.perturb.infill import make_infill
from explorer.perturb.scoring import score_batch

REFERENCE_SIDE = 224  # the half-widths and length scales are given at 224 x 224
PRIOR_MEAN_ABS = 0.1
_CHUNK_ELEMENTS = 1 << 22  # kernel entries evaluated at once (n_probes x candidates): 16 MB per float32 buffer
_STATE_VERSION = 1


# --------------------------------------------------------------------------- small helpers
def _floats(text: str, name: str, count: int | None = None) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in str(text).replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise ParamError(f"parameter {name!r} = {text!r} must be comma-separated numbers") from None
    if not vals or (count is not None and len(vals) != count):
        want = f"{count} numbers" if count else "at least one number"
        raise ParamError(f"parameter {name!r} = {text!r} needs {want}")
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise ParamError(f"parameter {name!r} = {text!r}: every value must be a positive number")
    return vals


def _digest(a: np.ndarray | torch.Tensor) -> str:
    if isinstance(a, torch.Tensor):
        a = a.detach().float().cpu().numpy()
    a = np.ascontiguousarray(a, dtype=np.float32)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()



def box_mean(m: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of ``m`` (H×W) over the (2r+1)² window around each pixel, clipped at the borders (integral image)."""
    H, W = m.shape
    c = torch.nn.functional.pad(m.double().cumsum(0).cumsum(1), (1, 0, 1, 0))
    ys = torch.arange(H, device=m.device)
    xs = torch.arange(W, device=m.device)
    y0, y1 = (ys - r).clamp(min=0), (ys + r + 1).clamp(max=H)
    x0, x1 = (xs - r).clamp(min=0), (xs + r + 1).clamp(max=W)
    s = c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]
    n = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    return (s / n).to(m.dtype)



# --------------------------------------------------------------------------- the method
@register("borex")
class BOREx(Method):
    title = "BOREx (Bayesian-optimisation refinement)"
    family = "refinement"
    paper = ("Kikuchi, Uchida, Waga, Suenaga 2022, BOREx: Bayesian-Optimization-Based Refinement of Saliency "
             "Map for Image- and Video-Classification Models (arXiv 2210.17130)")
    summary = ("refines a prior map (any method's) by a Gaussian process over windows (y, x, size), probing "
               "the model where the UCB acquisition is highest; two forwards per iteration")
    needs = Needs.SCORES
    scoring = True
    outputs = (
        LayerSpec(REFINED, signed=False,
                  help="posterior mean + prior, box-averaged per window size, averaged over sizes",
                  meaning="the prior map corrected by Bayesian optimisation: a ranking, brighter = the windows over"
                          " this pixel matter more",
                  # P_c(window kept alone) - P_c(window removed) is negative for most windows of a photo (a window
                  # alone rarely holds the class) and the prior's scale is arbitrary, so no value is a boundary
                  zero="a ranking, not a signed score: prior + GP mean of P_c(window kept alone) - P_c(window "
                       "removed), mostly negative on photos; 0 is no boundary between support and opposition"),
        LayerSpec(UNCERTAINTY, signed=False, help="GP posterior standard deviation, averaged likewise"),
    )
    params = Params(
        Param("iterations", "int", 50, "GP iterations (queries; two forwards each); more resumes a previous run",
              low=1, high=500, step=1),
        Param("prior", "str", "rise", "prior map: a result of this session by method/layer name, a method to "
              "run first (e.g. rise, gradcam), or 'flat' (none)", live=False, picker="prior"),
        Param("prior_params", "str", "", "parameters of the prior method when it is run here, e.g. "
              "'n=100,cells=8,p=0.3' (empty = its defaults)", live=False),
        Param("prior_file", "str", None, "a .npy file holding the prior map (overrides 'prior')", live=False,
              picker="npy"),
        Param("scales", "str", "30,45,60,75", "window half-widths in pixels at 224x224 (scaled with the input)",
              live=False),
        Param("kappa", "float", 10.0, "UCB exploration weight (a = mu + h + kappa sigma)", low=0.0, high=100.0,
              step=0.5),
        Param("length_scales", "str", "12,12,10", "initial Matern length scales (y, x, s) at 224x224",
              live=False),
        Param("nu", "choice", "1.5", "Matern smoothness", choices=("1.5", "2.5")),
        Param("alpha", "float", 0.01, "GP noise added to the kernel diagonal", low=1e-6, high=1.0, log=True),
        Param("jitter", "str", "1,1,0.5", "std of the Gaussian jitter added to each probe's GP coordinates "
              "(y, x, s at 224x224; the window itself stays on the grid), drawn from the run's seed; 0 = none",
              live=False),
        Param("refit", "bool", True, "refit the length scales (bounded to [1, 20]) after every query"),
        Param("normalise", "bool", True, "rescale the prior so mean|h| = 0.1"),
    )
    quick = {"iterations": 3, "prior": "rise", "prior_params": "n=32"}

    @classmethod
    def resumable(cls, old: dict, new: dict) -> bool:
        """Only the iteration count grew: the stored probes are then the first ones of the longer run and only
        the new queries cost forwards; any other change alters the probes themselves."""
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
        before, after = old.get("iterations"), new.get("iterations")
        return changed == {"iterations"} and isinstance(before, int) and isinstance(after, int) and after > before

    def validate(self) -> None:
        p = self.p
        self.scales_nominal = _floats(p.scales, "scales")
        if any(s > 4096 for s in self.scales_nominal):
            raise ParamError(f"parameter 'scales' = {p.scales!r}: half-widths must be <= 4096 pixels")
        self.ls_init = _floats(p.length_scales, "length_scales", 3)
        try:
            jit = tuple(float(v) for v in str(p.jitter).split(",") if v.strip())
        except ValueError:
            jit = ()
        if len(jit) == 1:
            jit = jit * 3
        if len(jit) != 3 or not all(math.isfinite(v) and 0 <= v <= 50 for v in jit):
            raise ParamError(f"parameter 'jitter' = {p.jitter!r} needs 1 or 3 numbers between 0 and 50")
        self.jitter = jit
        self.prior_kwargs = parse_assignments(v for v in str(p.prior_params).split(",") if v.strip())
        self.nu = float(p.nu)

    # ------------------------------------------------------------------ the prior
    def _prior(self, ctx: Context) -> Iterator[tuple[float, np.ndarray | None, Any]]:
        """Yields (progress, partial prior, None) while a prior method runs, then (1, prior, source)."""
        p = self.p
        if p.prior_file:
            a = read_prior_file(p.prior_file)
            yield 1.0, map_to_input(a, ctx, f"prior file {p.prior_file}"), ("file", str(p.prior_file))
            return
        name = str(p.prior).strip()
        if name in ctx.priors:
            yield 1.0, map_to_input(ctx.priors[name], ctx, f"prior {name!r}"), ("given", name)
            return
        if name.lower() in ("flat", "none", "zero", ""):
            yield 1.0, np.zeros(tuple(ctx.x.shape[-2:]), np.float32), ("flat",)
            return
        names = method_names()
        if name not in names:
            raise UnknownNameError("prior", name, ["flat", *sorted(ctx.priors), *names])
        if name == self.name:
            raise ParamError("prior=borex would refine its own output: pick another method, a result or a file")
        source = ("method", name, tuple(sorted(self.prior_kwargs.items())), int(ctx.seed), int(ctx.target),
                  _digest(ctx.x))
        st = ctx.state
        if isinstance(st, dict) and st.get("prior_source") == source and isinstance(st.get("prior"), np.ndarray):
            yield 1.0, st["prior"], source  # the previous run computed this very prior: reuse it
            return
        cls = get_method(name)
        inst = cls(ctx.model, **self.prior_kwargs)
        sub = dataclasses.replace(ctx, state=None)
        last = None
        for step in inst.steps(sub):
            ctx.cancel.check()
            last = step
            layer = next((o.name for o in cls.outputs if o.name in step.maps), next(iter(step.maps)))
            if step.progress < 1.0:
                yield float(step.progress), map_to_input(step.maps[layer], ctx, f"prior {name!r}"), None
        if last is None:
            raise ExplorerError(f"prior method {name!r} produced no map")
        layer = next((o.name for o in cls.outputs if o.name in last.maps), next(iter(last.maps)))
        yield 1.0, map_to_input(last.maps[layer], ctx, f"prior {name!r}"), source

    # ------------------------------------------------------------------ the run
    def steps(self, ctx: Context) -> Iterator[Step]:
        p = self.p
        dev = ctx.device
        _, _, H, W = ctx.x.shape
        f = REFERENCE_SIDE / min(H, W)  # input pixels -> 224 units
        s_nom = self.scales_nominal
        s_px = [max(1, int(round(s / f))) for s in s_nom]

        # 1. the prior
        prior_raw, source, prior_stage = None, None, False
        for prog, m, src in self._prior(ctx):
            if src is None:
                prior_stage = True
                yield Step(0.2 * prog, {REFINED: m}, {"stage": "prior", "prior": str(p.prior)},
                           f"prior {p.prior}: {prog:.0%}")
            else:
                prior_raw, source = m, src
        prior_raw = np.ascontiguousarray(prior_raw, dtype=np.float32)
        h = torch.from_numpy(prior_raw).to(dev)
        scale = 1.0
        if p.normalise:
            mabs = float(h.abs().mean())
            scale = PRIOR_MEAN_ABS / mabs if mabs > 0 else 1.0
        h = h * scale
        base = 0.2 if prior_stage else 0.0

        fingerprint = {
            "version": _STATE_VERSION, "target": int(ctx.target), "input": (H, W), "x": _digest(ctx.x),
            "prior": _digest(prior_raw), "scales": tuple(s_nom), "length_scales": tuple(self.ls_init),
            "kappa": float(p.kappa), "nu": self.nu, "alpha": float(p.alpha), "refit": bool(p.refit),
            "normalise": bool(p.normalise), "jitter": tuple(self.jitter), "seed": int(ctx.seed),
        }

        # 2. resume from a previous run's state when everything matches
        probes: list[tuple[int, int, int, float]] = []  # (y, x, scale index, score)
        ls_hist: list[np.ndarray] = []
        resume = "no state given"
        st = ctx.state
        if st is not None:
            if not isinstance(st, dict) or st.get("method") != self.name:
                resume = "the state is not a BOREx state: restarted"
            elif st.get("fingerprint") != fingerprint:
                diff = sorted(k for k in fingerprint if st.get("fingerprint", {}).get(k) != fingerprint[k])
                resume = f"the state differs in {', '.join(diff)}: restarted"
            else:
                pr = np.asarray(st["probes"], dtype=np.float64).reshape(-1, 4)
                probes = [(int(a), int(b), int(c), float(d)) for a, b, c, d in pr]
                ls_hist = [np.asarray(v, dtype=np.float64) for v in np.asarray(st["length_scales"]).reshape(-1, 3)]
                resume = f"resumed from {len(probes)} probes"
        all_probes, all_ls = list(probes), list(ls_hist)

        lo, hi = LENGTH_BOUNDS
        ls0 = torch.tensor(self.ls_init, dtype=torch.float64, device=dev)
        if p.refit:
            ls0 = ls0.clamp(lo, hi)
        ys_c = torch.arange(H, device=dev, dtype=torch.float32) * f
        xs_c = torch.arange(W, device=dev, dtype=torch.float32) * f
        infill = make_infill("zero", ctx.x, ctx.model.preprocess)
        stats = {"forwards": 0, "forward_seconds": 0.0, "gp_seconds": 0.0, "refit_seconds": 0.0,
                 "grid_seconds": 0.0}

        jitter = np.asarray(self.jitter, dtype=np.float64)

        def design(pr):
            rows = []
            for i, (y, x, j, _) in enumerate(pr):  # jitter of probe i: a function of (seed, i) only
                e = (np.random.default_rng([int(ctx.seed) & 0xFFFFFFFF, i]).normal(size=3) * jitter
                     if jitter.any() else 0.0)
                rows.append(np.array([y * f, x * f, s_nom[j]]) + e)
            X = torch.tensor(np.array(rows), dtype=torch.float64, device=dev)
            score = torch.tensor([sc for *_, sc in pr], dtype=torch.float64, device=dev)
            hv = torch.stack([h[y, x] for y, x, _, _ in pr]).double()
            return X, score - hv

        def evaluate(gp: GP):
            """Posterior over the whole grid: the two maps and the UCB argmax (scale index, y, x)."""
            n = gp.X.shape[0]
            Xf = gp.X.float()
            lsf = gp.ls.float()
            Linv32 = gp.Linv.float()
            w32 = gp.weights.float()
            rows = max(1, min(H, _CHUNK_ELEMENTS // max(1, n * W)))
            refined = torch.zeros(H, W, device=dev, dtype=torch.float32)
            unc = torch.zeros(H, W, device=dev, dtype=torch.float32)
            best_val, best = -math.inf, (0, 0, 0)
            dx2 = ((xs_c[None, :] - Xf[:, 1:2]) / lsf[1]) ** 2  # (n, W)
            for j, s in enumerate(s_nom):
                ds2 = ((s - Xf[:, 2]) / lsf[2]) ** 2  # (n,)
                mu_s = torch.empty(H, W, device=dev, dtype=torch.float32)
                sd_s = torch.empty(H, W, device=dev, dtype=torch.float32)
                for r0 in range(0, H, rows):
                    ctx.cancel.check()
                    r1 = min(H, r0 + rows)
                    dy2 = ((ys_c[None, r0:r1] - Xf[:, 0:1]) / lsf[0]) ** 2  # (n, R)
                    d = (dy2[:, :, None] + dx2[:, None, :] + ds2[:, None, None]).sqrt_()
                    k = matern_(d, self.nu).reshape(n, -1)  # (n, R*W)
                    mu = (w32[None, :] @ k)[0]
                    v = Linv32 @ k
                    sd = (1.0 - (v * v).sum(0)).clamp_min_(0).sqrt_()
                    del d, k, v
                    mu_s[r0:r1] = mu.view(r1 - r0, W)
                    sd_s[r0:r1] = sd.view(r1 - r0, W)
                mu_s += h
                acq = mu_s + float(p.kappa) * sd_s
                val, idx = acq.reshape(-1).max(0)
                if float(val) > best_val:
                    best_val, best = float(val), (j, int(idx) // W, int(idx) % W)
                refined += box_mean(mu_s, s_px[j])
                unc += box_mean(sd_s, s_px[j])
            return refined / len(s_nom), unc / len(s_nom), best

        def first_query():
            if float(h.max()) == float(h.min()):  # flat prior: no maximum, start at the centre
                return 0, H // 2, W // 2
            idx = int(torch.argmax(h.reshape(-1)))
            return 0, idx // W, idx % W

        def probe(q):
            j, y, x = q
            s = s_px[j]
            m = torch.zeros(2, 1, H, W, device=dev, dtype=ctx.x.dtype)
            m[0, :, max(0, y - s):min(H, y + s), max(0, x - s):min(W, x + s)] = 1.0
            m[1] = 1.0 - m[0]
            t0 = time.perf_counter()
            sc = score_batch(ctx.model, infill, ctx.x, m)[:, ctx.target].double()
            stats["forward_seconds"] += time.perf_counter() - t0
            stats["forwards"] += 2
            return float(sc[0] - sc[1])

        def make_state():
            return {"method": self.name, "fingerprint": dict(fingerprint), "prior_source": source,
                    "prior": prior_raw,
                    "probes": np.array(all_probes, dtype=np.float64).reshape(-1, 4),
                    "length_scales": np.array(all_ls, dtype=np.float64).reshape(-1, 3)}

        def info(pr, ls, it):
            return {"probes": [(y, x, s_px[j], sc) for y, x, j, sc in pr], "iteration": it,
                    "iterations": int(p.iterations), "length_scales": [float(v) for v in ls],
                    "prior_scale": scale, "prior_source": source[0], "resume": resume,
                    "half_widths": list(s_px), **stats, "state": make_state()}

        T = int(p.iterations)
        n0 = len(probes)
        if n0:
            if n0 > T:  # replay an earlier point of the stored run exactly
                probes, ls_hist = probes[:T], ls_hist[:T]
                resume = f"replayed {T} of {n0} stored probes"
            t0 = time.perf_counter()
            X, r = design(probes)
            ls = torch.tensor(ls_hist[-1], dtype=torch.float64, device=dev)
            refined, unc, q = evaluate(GP(X, r, ls, self.nu, float(p.alpha)))
            stats["grid_seconds"] += time.perf_counter() - t0
            n0 = len(probes)
            yield Step(base + (1 - base) * n0 / T, {REFINED: refined, UNCERTAINTY: unc}, info(probes, ls, n0),
                       f"{resume}: {n0}/{T} iterations")
        else:
            ls = ls0
            q = first_query()

        for it in range(n0, T):
            ctx.cancel.check()
            score = probe(q)
            probes.append((q[1], q[2], q[0], score))
            t0 = time.perf_counter()
            X, r = design(probes)
            if p.refit and len(probes) >= 2:
                ls = refit_length_scales(X, r, ls, self.nu, float(p.alpha))
            t1 = time.perf_counter()
            gp = GP(X, r, ls, self.nu, float(p.alpha))
            refined, unc, q = evaluate(gp)
            t2 = time.perf_counter()
            stats["refit_seconds"] += t1 - t0
            stats["grid_seconds"] += t2 - t1
            stats["gp_seconds"] += t2 - t0
            stats["last_gp_seconds"] = t2 - t0
            all_probes.append(probes[-1])
            all_ls.append(ls.detach().cpu().numpy().copy())
            yield Step(base + (1 - base) * (it + 1) / T, {REFINED: refined, UNCERTAINTY: unc},
                       info(probes, ls, it + 1), f"iteration {it + 1}/{T}: score {score:+.3f}")
