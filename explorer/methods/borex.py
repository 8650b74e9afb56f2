"""BOREx: refine any heat map by Gaussian-process regression and Bayesian optimisation.

Kikuchi, Uchida, Waga, Suenaga 2022, "BOREx: Bayesian-Optimization-Based Refinement of Saliency Map for
Image- and Video-Classification Models" (arXiv 2210.17130). See docs/methods.md §5, which says which choices
are the paper's and which are this project's own. The search state (probes, fit, posterior over the grid) is
``borex_search.py``; the GP itself ``gaussian_process.py``; reading a prior map ``prior_maps.py``.

What is computed (black box, class scores only):

- Prior h: a map from another result (``ctx.priors``), a ``.npy`` file, or a method run first; rescaled so
  mean|h| = 0.1 (``normalise``). An all-zero map stays zero (a flat prior).
- Search space (y, x, s): every pixel of the model input × window half-widths s (30, 45, 60, 75 at 224²,
  scaled with the input's shorter side). A query is the square window of side 2s centred at (y, x).
- One query = two forwards: score = P_c(only the window kept) − P_c(the window removed), "removed" being
  zero in normalised space (the dataset mean colour).
- A GP on the residuals r = score − h(y, x) in coordinates that are fractions of the image's shorter side:
  constant mean, Matérn kernel (ν = 1.5 or 2.5) with amplitude σ_f and ARD length scales, noise σ_n; all
  fitted after every query by maximising the marginal likelihood plus weak log-normal priors (MAP).
- Acquisition: UCB a = h + μ + κσ over the WHOLE grid every iteration (chunked, bounded memory). First
  query: argmax h at the smallest s.
- Each iteration yields ``refined`` = mean over s of box_(2s+1)²(h + μ_s) and ``uncertainty`` likewise of
  σ_s, the probed windows in ``info["probes"]`` as (y, x, s, score) in input pixels, and the fit in
  ``info["gp"]`` (values and which sit on a bound).
- At the end (``score_gain``), insertion − deletion of the prior and of the refined map on this model's own
  curves, and their difference, in ``info["gain"]``; ``info["headline"]`` says it in one line.
- Resume: the last step's ``info["state"]`` (numpy arrays and plain values, picklable) holds the probes, the
  fit history and the prior. Passed back as ``ctx.state`` (``run(..., state=...)``) with the same image,
  target, prior and GP settings, a run with more iterations continues from the stored probes (only the new
  queries cost forwards), and one with fewer iterations replays the first ones exactly (no forwards).
  Anything that differs restarts from scratch, and ``info["resume"]`` says why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from typing import Any, Iterator

import numpy as np
import torch

from explorer.core.catalog import Family
from explorer.core.errors import ExplorerError, ParamError, UnknownNameError
from explorer.core.params import Param, Params, parse_assignments
from explorer.core.types import REFINED, UNCERTAINTY, MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, get_method, method_names, register
from explorer.methods.borex_search import REFERENCE_SIDE, Search, box_mean
from explorer.methods.gaussian_process import GP, Hyper
from explorer.methods.prior_maps import map_to_input, read_prior_file
from explorer.perturb.infill import make_infill
from explorer.perturb.scoring import score_batch

__all__ = ["BOREx", "GP", "REFERENCE_SIDE", "box_mean"]

PRIOR_MEAN_ABS = 0.1
GAIN_PROTOCOLS = ("quick", "rise", "off")
_STATE_VERSION = 2  # 2: GP in fractions of the image with fitted amplitude, noise and mean


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


def prior_label(source: tuple) -> str:
    """What the refined map refined, in words: 'rise (n=100, cells=8)', "the session's 'salient'", ..."""
    kind = source[0]
    if kind == "method":
        kw = ", ".join(f"{k}={v}" for k, v in source[2])
        return f"{source[1]} ({kw})" if kw else f"{source[1]} (its defaults)"
    if kind == "given":
        return f"the session's {source[1]!r}"
    if kind == "file":
        return f"file {source[1]}"
    return "a flat map"


def ins_minus_del(ctx: Context, saliency: np.ndarray, protocol: str) -> dict[str, float]:
    """Insertion and deletion AUC of one map on this model (docs/methods.md §7.1: deletion to zero, insertion
    from the blurred image), with ``protocol``'s step (``rise``: 224 px per step at 224²; ``quick``: 7× fewer
    forwards, AUCs close to the full protocol's but not equal). ``saliency``: in model-input space, as the
    metric's curves (``explorer.perturb.curves``, the engine ``evaluation.causal`` runs) rank it."""
    from explorer.perturb.curves import curve_of, protocol_step

    step = protocol_step(protocol, tuple(ctx.x.shape[-2:]))
    sal = np.asarray(saliency, dtype=np.float32)  # ranked at the precision the metric ranks maps at
    auc = {m: curve_of(ctx.model, ctx, sal, mode=m, step=step, cancel=ctx.cancel).auc
           for m in ("insertion", "deletion")}
    return {**auc, "ins_minus_del": auc["insertion"] - auc["deletion"]}


# --------------------------------------------------------------------------- the method
@register("borex")
class BOREx(Method):
    title = "BOREx (Bayesian-optimisation refinement)"
    family = Family.REFINEMENT
    paper = ("Kikuchi, Uchida, Waga, Suenaga 2022, BOREx: Bayesian-Optimization-Based Refinement of Saliency "
             "Map for Image- and Video-Classification Models (arXiv 2210.17130)")
    summary = ("refines a prior map (any method's) by a Gaussian process over windows (y, x, size), probing "
               "the model where the UCB acquisition is highest; two forwards per iteration")
    needs = Needs.SCORES
    scoring = True
    outputs = (
        MapSpec(REFINED, signed=False,
                  help="posterior mean + prior, box-averaged per window size, averaged over sizes",
                  meaning="the prior map corrected by Bayesian optimisation: a ranking, brighter = the windows over"
                          " this pixel matter more",
                  # P_c(window kept alone) - P_c(window removed) is negative for most windows of a photo (a window
                  # alone rarely holds the class) and the prior's scale is arbitrary, so no value is a boundary
                  zero="a ranking, not a signed score: prior + GP mean of P_c(window kept alone) - P_c(window "
                       "removed), mostly negative on photos; 0 is no boundary between support and opposition"),
        MapSpec(UNCERTAINTY, signed=False, help="GP posterior standard deviation, averaged likewise"),
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
        Param("kappa", "float", 10.0, "UCB exploration weight, in posterior standard deviations "
              "(a = h + mu + kappa sigma)", low=0.0, high=100.0, step=0.5),
        Param("length_scales", "str", "0.15,0.15,0.15", "GP length scales (y, x, s) as fractions of the image's "
              "shorter side: the start of the fit, or the values used when 'refit' is off", live=False),
        Param("amplitude", "float", 0.2, "GP amplitude sigma_f in score units (start of the fit / fixed)",
              low=1e-3, high=5.0, log=True),
        Param("noise", "float", 0.02, "GP noise standard deviation in score units (start of the fit / fixed)",
              low=1e-3, high=1.0, log=True),
        Param("nu", "choice", "1.5", "Matern smoothness", choices=("1.5", "2.5")),
        Param("jitter", "str", "1,1,0.5", "std of the Gaussian jitter added to each probe's GP coordinates "
              "(y, x, s in pixels at 224x224; the window itself stays on the grid), drawn from the run's seed; "
              "0 = none", live=False),
        Param("refit", "bool", True, "refit amplitude, length scales, noise and mean after every query "
              "(maximum a posteriori, weak log-normal priors)"),
        Param("normalise", "bool", True, "rescale the prior so mean|h| = 0.1"),
        Param("score_gain", "choice", "quick", "at the end, score prior and refined map by insertion - deletion "
              "on this model (quick: 132 forwards at any size; rise: the full protocol, 900; off)",
              choices=GAIN_PROTOCOLS, live=False),
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
        ls = _floats(p.length_scales, "length_scales", 3)
        self.hyper0 = Hyper(float(p.amplitude), ls, float(p.noise))  # type: ignore[arg-type]
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
    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        p = self.p
        prior_raw, source, base = yield from self._prior_steps(ctx)
        gain_on = p.score_gain != "off"
        span = (0.9 if gain_on else 1.0) - base  # the gain's curves take the last tenth of the progress bar
        run = self._start(ctx, prior_raw, source)
        T = int(p.iterations)
        post = None
        if run.search.probes:  # resumed or replayed: the stored probes cost no forwards
            post = run.posterior()
            n0 = len(run.search.probes)
            yield MethodStep(base + span * n0 / T, post.maps, run.info(n0), f"{run.resume}: {n0}/{T} iterations")
        q = post.next_query if post is not None else run.search.first_query()
        for it in range(len(run.search.probes), T):
            ctx.cancel.check()
            score = run.probe(q)
            post = run.add(q, score)
            q = post.next_query
            yield MethodStep(base + span * (it + 1) / T, post.maps, run.info(it + 1),
                             f"iteration {it + 1}/{T}: score {score:+.3f}")
        if gain_on and post is not None:
            yield self._gain_step(ctx, run, post)

    def _prior_steps(self, ctx: Context):
        """Streams the prior while a prior method runs (the first fifth of the progress bar); returns the prior
        map, its source and where the refinement's progress starts."""
        prior_raw, source, prior_stage = None, None, False
        for prog, m, src in self._prior(ctx):
            if src is None:
                prior_stage = True
                yield MethodStep(0.2 * prog, {REFINED: m}, {"stage": "prior", "prior": str(self.p.prior)},
                                 f"prior {self.p.prior}: {prog:.0%}")
            else:
                prior_raw, source = m, src
        return np.ascontiguousarray(prior_raw, dtype=np.float32), source, (0.2 if prior_stage else 0.0)

    def _start(self, ctx: Context, prior_raw: np.ndarray, source: tuple) -> _Run:
        """The search over the (rescaled) prior, resumed from ``ctx.state`` when everything it depends on
        matches."""
        p = self.p
        _, _, H, W = ctx.x.shape
        scale = 1.0
        h = torch.from_numpy(prior_raw).to(ctx.device)
        if p.normalise:
            mabs = float(h.abs().mean())
            scale = PRIOR_MEAN_ABS / mabs if mabs > 0 else 1.0
        fingerprint = {
            "version": _STATE_VERSION, "target": int(ctx.target), "input": (H, W), "x": _digest(ctx.x),
            "prior": _digest(prior_raw), "scales": tuple(self.scales_nominal), "start": dataclasses.astuple(
                self.hyper0), "kappa": float(p.kappa), "nu": self.nu, "refit": bool(p.refit),
            "normalise": bool(p.normalise), "jitter": tuple(self.jitter), "seed": int(ctx.seed),
        }
        search = Search(h * scale, self.scales_nominal, self.nu, float(p.kappa), self.hyper0, bool(p.refit),
                        self.jitter, int(ctx.seed), ctx.cancel)
        stored, resume = self._stored_probes(ctx.state, fingerprint)
        run = _Run(self.name, search, prior_raw, source, scale, fingerprint, resume, int(p.iterations), ctx)
        run.all_probes = [s for s, _ in stored]  # the state keeps every stored probe, even when replaying fewer
        run.all_hypers = [hp for _, hp in stored]
        T = int(p.iterations)
        if len(stored) > T:  # replay an earlier point of the stored run exactly
            run.resume = f"replayed {T} of {len(stored)} stored probes"
            stored = stored[:T]
        search.probes = [s for s, _ in stored]
        search.hypers = [hp for _, hp in stored]
        return run

    def _gain_step(self, ctx: Context, run: _Run, post) -> MethodStep:
        """How much the refinement changed the prior, on this model's own insertion and deletion curves."""
        protocol = self.p.score_gain
        before = ins_minus_del(ctx, run.prior_raw, protocol)
        after = ins_minus_del(ctx, post.refined.cpu().numpy(), protocol)
        gain = {"protocol": protocol, "prior": before, "refined": after,
                "gain": after["ins_minus_del"] - before["ins_minus_del"]}
        out = run.info(len(run.search.probes))
        out.update(gain=gain, headline=(
            f"refined {prior_label(run.source)}: insertion − deletion {before['ins_minus_del']:+.3f} → "
            f"{after['ins_minus_del']:+.3f} (gain {gain['gain']:+.3f}, {protocol} protocol); "
            f"{fit_text(run.search.hyper)}"))
        return MethodStep(1.0, post.maps, out, out["headline"])

    def _stored_probes(self, st, fingerprint: dict) -> tuple[list, str]:
        """The probes and fits of a previous run's state, when it is this method's and everything it depends on
        matches (else none), and the sentence that says which."""
        if st is None:
            return [], "no state given"
        if not isinstance(st, dict) or st.get("method") != self.name:
            return [], "the state is not a BOREx state: restarted"
        if st.get("fingerprint") != fingerprint:
            diff = sorted(k for k in fingerprint if st.get("fingerprint", {}).get(k) != fingerprint[k])
            return [], f"the state differs in {', '.join(diff)}: restarted"
        pr = np.asarray(st["probes"], dtype=np.float64).reshape(-1, 4)
        hy = np.asarray(st["hypers"], dtype=np.float64).reshape(-1, 6)
        stored = [((int(a), int(b), int(c), float(d)), Hyper(e[0], (e[1], e[2], e[3]), e[4], e[5]))
                  for (a, b, c, d), e in zip(pr, hy)]
        return stored, f"resumed from {len(stored)} probes"


class _Run:
    """One BOREx run's record: the search, what it started from, its costs, and the info and resumable state
    every step reports."""

    def __init__(self, method: str, search: Search, prior_raw: np.ndarray, source: tuple, scale: float,
                 fingerprint: dict, resume: str, iterations: int, ctx: Context):
        self.method, self.search, self.prior_raw, self.source = method, search, prior_raw, source
        self.scale, self.fingerprint, self.resume, self.iterations = scale, fingerprint, resume, iterations
        self.stats = {"forwards": 0, "forward_seconds": 0.0, "gp_seconds": 0.0, "refit_seconds": 0.0,
                      "grid_seconds": 0.0}
        self.probe = _WindowProbe(ctx, search.half_widths, self.stats)
        self.all_probes: list = []
        self.all_hypers: list = []

    def posterior(self):
        t0 = time.perf_counter()
        post = self.search.posterior()
        self.stats["grid_seconds"] += time.perf_counter() - t0
        return post

    def add(self, q, score: float):
        """Record a probe, refit, and return the new posterior (timed into the stats)."""
        t0 = time.perf_counter()
        self.search.add(q, score)
        t1 = time.perf_counter()
        post = self.search.posterior()
        t2 = time.perf_counter()
        self.stats["refit_seconds"] += t1 - t0
        self.stats["grid_seconds"] += t2 - t1
        self.stats["gp_seconds"] += t2 - t0
        self.stats["last_gp_seconds"] = t2 - t0
        self.all_probes.append(self.search.probes[-1])
        self.all_hypers.append(self.search.hyper)
        return post

    def state(self) -> dict:
        return {"method": self.method, "fingerprint": dict(self.fingerprint), "prior_source": self.source,
                "prior": self.prior_raw,
                "probes": np.array(self.all_probes, dtype=np.float64).reshape(-1, 4),
                "hypers": np.array([(hp.amplitude, *hp.length_scales, hp.noise, hp.mean) for hp in self.all_hypers],
                                   dtype=np.float64).reshape(-1, 6)}

    def info(self, it: int) -> dict:
        search, hp = self.search, self.search.hyper
        return {"headline": f"refined {prior_label(self.source)}, {it} probes; {fit_text(hp)}",
                "probes": [(y, x, search.half_widths[j], sc) for y, x, j, sc in search.probes],
                "iteration": it, "iterations": self.iterations, "gp": hp.record(),
                "length_scales": list(hp.length_scales), "prior_scale": self.scale, "prior_source": self.source[0],
                "prior": prior_label(self.source), "resume": self.resume, "half_widths": list(search.half_widths),
                **self.stats, "state": self.state()}


class _WindowProbe:
    """The objective BOREx's GP models: a window's (size index j, centre y, x) score with only the window kept
    minus with only the window removed (zero in-fill), two forwards, counted and timed into ``stats``."""

    def __init__(self, ctx: Context, half_widths, stats: dict):
        self.ctx, self.half_widths, self.stats = ctx, half_widths, stats
        self.infill = make_infill("zero", ctx.x, ctx.model.preprocess)

    def __call__(self, q) -> float:
        ctx = self.ctx
        _, _, H, W = ctx.x.shape
        j, y, x = q
        s = self.half_widths[j]
        m = torch.zeros(2, 1, H, W, device=ctx.device, dtype=ctx.x.dtype)
        m[0, :, max(0, y - s):min(H, y + s), max(0, x - s):min(W, x + s)] = 1.0
        m[1] = 1.0 - m[0]
        t0 = time.perf_counter()
        sc = score_batch(ctx.model, self.infill, ctx.x, m)[:, ctx.target].double()
        self.stats["forward_seconds"] += time.perf_counter() - t0
        self.stats["forwards"] += 2
        return float(sc[0] - sc[1])


def fit_text(hp: Hyper) -> str:
    """The GP's fit in a sentence (the refined layer's headline)."""
    return (f"GP length scales (y, x, s) {', '.join(f'{v:.2f}' for v in hp.length_scales)} of the image, "
            f"amplitude {hp.amplitude:.3f}, noise {hp.noise:.3f}; on a bound: {', '.join(hp.on_bound()) or 'none'}")
