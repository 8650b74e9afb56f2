"""The scoring engine: which runtime computes a model's score-only forwards (no gradient, no hooks).

Black-box methods, Score-CAM's masked forwards and every evaluation curve are bound by forwards whose only
product is the class scores. Torch eager is not the fastest engine for those on most CPUs: ONNX Runtime runs
the same graph about 1.5x faster on a 2-core AVX2 machine (issue 29). So a torch model can score through an
ONNX export of itself:

- ``torch``: every forward is torch's.
- ``onnxruntime``: score-only forwards run on ONNX Runtime; the export must succeed and pass the check, or
  the choice is refused (``ModelLoadError``) - the user asked for it by name.
- ``auto`` (the default): export (or reuse the cached export), check it, time both engines briefly on the same
  batch, interleaved, and score with the faster; a failed export or check is a note and torch scores.

The export is the dynamo exporter (``torch.onnx.export(dynamo=True)``, which refuses data-dependent control
flow instead of tracing one branch) with a dynamic batch axis, written once to the user cache folder under a
key from the weights, the architecture, the input size and the library versions. A cached file is never
trusted: its bytes must hash to what its JSON sidecar recorded and its logits must pass the same check as a
fresh export, or it is rebuilt. (ONNX is protobuf: nothing is unpickled, and no custom-op library is loaded.)

Resolution is lazy (the first score-only forward, or ``LoadedModel.resolve_engine()`` where the CLI knows a
score-only method is next), so loading a model and its first prediction never wait for an export. Gradients and
layer hooks stay on torch: only ``LoadedModel.logits`` (used by the score-only paths) routes here, and only with
autograd off. A change of the weights (``WeightsWatch``) or a copied wrapper around another module
sends the forwards back to torch: the export describes the weights it was made from.

Thread settings: ONNX Runtime's intra-op pool takes torch's thread count and does not spin while waiting
(``session.intra_op.allow_spinning = 0``) unless ``EXPLORER_ORT_SPINNING=1``: on a machine shared with other work,
spinning threads take the cores the other work needs and then wait for it (see benchmarks/bench_cold.py
``--shared``, which measures both). The same holds inside one process: after each of torch's small parallel
operations between two ORT forwards (a batch of masks, an in-fill), torch's OpenMP workers busy-wait for more
work and take the cores ORT's pool needs; RISE N=1000 scored by ORT took 1.25-1.45x the bare ORT forwards that
way. ``quiet_torch`` runs torch on one thread while a score-only run's forwards go to ORT (its own operations
are a few percent of the time), which closes that gap; setting ``OMP_WAIT_POLICY=PASSIVE`` for the process
closes it too but slows torch's own forwards and backwards by 15-25 %, so it is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import threading
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from explorer.core.errors import ModelLoadError, ParamError

if TYPE_CHECKING:
    from explorer.models.loaded import LoadedModel

ENGINES = ("auto", "torch", "onnxruntime")
# the check: every logit within RTOL of the largest |logit| (at least 1), and the same top-5 classes per row
RTOL = 1e-3
PROBE_BATCH = 4
TIMING_ROUNDS = 3
FORMAT = 1  # bump when the export settings change: old cache files are then ignored


def engine_choice(requested: str | None) -> str:
    """``requested``, else $EXPLORER_ENGINE, else ``auto``; an unknown name is a ParamError."""
    name = (requested or os.environ.get("EXPLORER_ENGINE") or "auto").strip().lower()
    if name not in ENGINES:
        raise ParamError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    return name


def cache_dir() -> Path:
    """$EXPLORER_CACHE_DIR (tests, a shared folder), else the platform's user cache folder for explorer."""
    env = os.environ.get("EXPLORER_CACHE_DIR")
    if env:
        return Path(env) / "onnx"
    import platformdirs

    return Path(platformdirs.user_cache_dir("explorer")) / "onnx"


def session_options(threads: int | None = None):
    """ONNX Runtime's options for explorer's sessions (exported graphs and users' ONNX models alike)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spin = os.environ.get("EXPLORER_ORT_SPINNING", "0") in ("1", "true", "yes")
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return opts


def _versions() -> dict[str, str]:
    from explorer import __version__

    out = {"explorer": __version__, "torch": torch.__version__, "format": str(FORMAT)}
    for name in ("onnxruntime", "onnxscript", "onnx"):  # read from the installed metadata: no heavy import
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def fingerprint(module: torch.nn.Module, input_hw: tuple[int, int]) -> str:
    """A key for the export: the architecture's printout, every parameter and buffer (name, dtype, shape,
    bytes), the input size and the library versions. Any change gives another key (another cache file)."""
    h = hashlib.sha256()
    h.update(json.dumps({"class": f"{type(module).__module__}.{type(module).__qualname__}", "repr": repr(module),
                         "input": list(input_hw), **_versions()}, sort_keys=True).encode())
    for name, t in module.state_dict().items():
        t = t.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


class WeightsWatch:
    """Whether a module's weights changed since the export was made from them.

    Checked before every score-only forward, so it must be cheap: walking the module tree (``parameters()``)
    costs about 4 ms on EfficientNet-Lite0, a tenth of a batch's forward. So the tensors are collected once;
    an in-place change (``copy_``, ``normal_``, ``load_state_dict``) moves their version counters, summed on
    every call (microseconds); a tensor replaced or added (``module.weight = Parameter(...)``) is seen by walking
    the tree again, at most every RECHECK_S seconds (a run's forwards follow each other far faster than any
    edit of the model between two runs)."""

    RECHECK_S = 0.5

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.tensors = self._collect()
        self.version = self._sum()
        self.walked = time.monotonic()

    def _collect(self) -> tuple[torch.Tensor, ...]:
        return (*self.module.parameters(), *self.module.buffers())

    def _sum(self) -> int:
        return sum(t._version for t in self.tensors)

    def changed(self) -> bool:
        if self._sum() != self.version:
            return True
        now = time.monotonic()
        if now - self.walked >= self.RECHECK_S:
            self.walked = now
            now_tensors = self._collect()
            return len(now_tensors) != len(self.tensors) or any(a is not b for a, b in zip(now_tensors, self.tensors))
        return False


# --------------------------------------------------------------------------- export and cache
def _export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """The dynamo export with a dynamic batch axis, to ``path`` as one self-contained file, quietly."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},))


def _read_cached(onnx_path: Path, key: str) -> bytes | None:
    """The cached graph's bytes when its sidecar names this key and their SHA-256 matches; else None."""
    meta_path = onnx_path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = onnx_path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    return data


def _build(module: torch.nn.Module, example: torch.Tensor, onnx_path: Path, key: str) -> bytes:
    """Export to a temporary file in the cache folder, then move it and its sidecar into place."""
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=onnx_path.parent)
    os.close(fd)
    try:
        _export(module, example, Path(tmp))
        data = Path(tmp).read_bytes()
        os.replace(tmp, onnx_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    meta = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "versions": _versions(),
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    onnx_path.with_suffix(".json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return data


class OrtForward:
    """An exported graph run by ONNX Runtime: (N, 3, h, w) tensor in, (N, K) logits on ``device`` out."""

    def __init__(self, data: bytes, device: torch.device):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(data, sess_options=session_options(), providers=providers)
        self.name = self.session.get_inputs()[0].name
        self.device = device
        self.checked: float | None = None  # the largest |logit difference| from torch on the probe batch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().float().contiguous(memory_format=torch.contiguous_format).cpu().numpy()
        return torch.from_numpy(self.session.run(None, {self.name: arr})[0]).to(self.device)


def check(reference: torch.Tensor, candidate: torch.Tensor) -> str | None:
    """None when ``candidate`` logits match ``reference`` (tolerance RTOL, same top-5 per row); else why not."""
    if candidate.shape != reference.shape:
        return f"shape {tuple(candidate.shape)} instead of {tuple(reference.shape)}"
    ref, cand = reference.double().cpu(), candidate.double().cpu()
    if not torch.isfinite(cand).all():
        return "non-finite logits"
    err = float((ref - cand).abs().max())
    tol = RTOL * max(1.0, float(ref.abs().max()))
    if err > tol:
        return f"logits differ by {err:.2e} (tolerance {tol:.2e})"
    k = min(5, ref.shape[1])
    same = all(set(a) == set(b) for a, b in zip(ref.topk(k, 1).indices.tolist(), cand.topk(k, 1).indices.tolist()))
    return None if same else "the top-5 classes differ"


def _elapsed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- the engine of one model
class Engine:
    """The engine choice of one LoadedModel and, once resolved, its ONNX Runtime forward (or None: torch)."""

    def __init__(self, requested: str = "auto"):
        self.requested = engine_choice(requested)
        self.resolved = self.requested == "torch"
        self.active = "torch"
        self.note = ""
        self.info: dict = {}
        self._forward: OrtForward | None = None
        self._module: torch.nn.Module | None = None
        self._watch: WeightsWatch | None = None
        self._hw: tuple[int, int] = (0, 0)

    # the one question LoadedModel.logits asks
    def forward(self, model: "LoadedModel", x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The ONNX Runtime forward to score ``x`` on ``model`` with, or None for torch; resolves on first use.

        The export's height and width are the model's input size: any other size (FIDO's reduced input, a
        wrapper with other preprocessing) is torch's."""
        if not self.resolved:
            self.resolve(model)
        if self._forward is None or tuple(x.shape[-2:]) != self._hw:
            return None
        if model.module is not self._module or model.module.training:
            return None  # a copied wrapper around a clone, or a module in training mode (torch refuses it)
        if self._watch is None or self._watch.changed():
            self._forward, self.active = None, "torch"  # the export no longer describes these weights
            self.note = "the weights changed after the export: torch scores"
            return None
        return self._forward

    def resolve(self, model: "LoadedModel") -> None:
        """Decide once: export/load, check, time, choose (``onnxruntime`` refuses instead of falling back)."""
        self.resolved = True
        if self.requested == "torch":
            return
        t0 = time.perf_counter()
        try:
            fwd, info = self._prepare(model)
        except Exception as exc:  # noqa: BLE001 - any failure here (a read-only cache, a model the probe breaks)
            why = str(exc) if isinstance(exc, _Unfit) else (  # means the same: torch scores, and says why
                f"could not be prepared for onnxruntime ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
                if str(exc) else f"could not be prepared for onnxruntime ({type(exc).__name__})")
            self.info = {"seconds": round(time.perf_counter() - t0, 3)}
            if self.requested == "onnxruntime":
                raise ModelLoadError(f"engine onnxruntime: model {model.id!r} {why}; use --engine torch") from None
            self.note = f"onnxruntime not used: model {why}"
            model.notes.append(self.note)
            return
        info["seconds"] = round(time.perf_counter() - t0, 3)
        self.info = info
        self._module, self._watch = model.module, WeightsWatch(model.module)
        self._hw = tuple(model.preprocess.input_size)
        if self.requested == "onnxruntime" or info["onnxruntime_images_per_s"] > info["torch_images_per_s"]:
            self._forward, self.active = fwd, "onnxruntime"

    def _prepare(self, model: "LoadedModel") -> tuple[OrtForward, dict]:
        module = model.module
        if model.kind != "torch" or module is None:
            raise _Unfit(f"is a {model.kind} model (only a torch module is exported)")
        missing = [n for n, v in _versions().items() if v == "missing"]
        if missing:  # onnxscript and onnx: the dynamo exporter's translator and format
            raise _Unfit(f"cannot be exported here ({', '.join(missing)} not installed)")
        h, w = model.preprocess.input_size
        key = fingerprint(module, (h, w))
        path = cache_dir() / f"{key}.onnx"
        gen = torch.Generator().manual_seed(0)
        probe = torch.randn(PROBE_BATCH, 3, h, w, generator=gen).to(model.device)
        with torch.inference_mode():
            ref = model.forward(_torch_input(model, probe)).float()
        data, source, export_s = _read_cached(path, key), "cache", None
        fwd, why = _try(data, model.device, probe, ref) if data is not None else (None, "no cache file")
        if why is not None:  # no cache file, or one that fails the check: a fresh export, checked the same way
            source, t_exp = "export", time.perf_counter()
            try:
                data = _build(module, probe[:2], path, key)
            except OSError as exc:  # the cache folder, not the model: say so
                raise _Unfit(f"has no writable cache folder for its export ({path.parent}: "
                             f"{exc.strerror or type(exc).__name__})") from None
            except Exception as exc:  # noqa: BLE001 - the exporter fails many ways; each means: torch scores
                first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
                raise _Unfit(f"cannot be exported to ONNX ({type(exc).__name__}: {first})") from None
            export_s = round(time.perf_counter() - t_exp, 2)
            fwd, why = _try(data, model.device, probe, ref)
            if why is not None:
                raise _Unfit(f"exports to an ONNX graph that fails the check: {why}")
        info = {"source": source, "cache_file": str(path), "key": key, "max_logit_diff": fwd.checked,
                **_time_both(model, fwd, probe)}
        if export_s is not None:
            info["export_seconds"] = export_s
        return fwd, info

    def record(self) -> dict:
        """What the manifest says: asked for, what scored, why, and what was measured."""
        out = {"requested": self.requested, "engine": self.active}
        if self.note or not self.resolved:
            out["note"] = self.note or "not decided: no score-only forward has run (every forward was torch's)"
        if self.info:
            out.update({k: v for k, v in self.info.items() if k not in ("cache_file",)})
        return out


def _try(data: bytes, device: torch.device, probe: torch.Tensor,
         ref: torch.Tensor) -> tuple[OrtForward | None, str | None]:
    """A session on ``data`` and None when its logits on ``probe`` pass the check; else (None, why not)."""
    try:
        fwd = OrtForward(data, device)
        out = fwd(probe)
        why = check(ref, out)
        fwd.checked = float((out.double().cpu() - ref.double().cpu()).abs().max()) if why is None else None
    except Exception as exc:  # noqa: BLE001 - a graph onnxruntime cannot load or run fails the check
        return None, f"onnxruntime cannot run it ({type(exc).__name__})"
    return (fwd, None) if why is None else (None, why)


class _Unfit(Exception):
    """Why the export cannot score this model (a note under ``auto``, a refusal under ``onnxruntime``)."""


def _torch_input(model: "LoadedModel", x: torch.Tensor) -> torch.Tensor:
    x = x.to(model.device)
    return x.contiguous(memory_format=torch.channels_last) if model.channels_last else x


def _time_both(model: "LoadedModel", fwd: OrtForward, probe: torch.Tensor) -> dict:
    """Images per second of each engine on the model's own batch size, best of TIMING_ROUNDS interleaved
    rounds (interleaving keeps a busy machine's slow moments from favouring one engine)."""
    size = max(1, min(model.batch.size, 16))
    x = probe.repeat(-(-size // probe.shape[0]), 1, 1, 1)[:size]
    xt = _torch_input(model, x)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    best = {"torch": float("inf"), "onnxruntime": float("inf")}
    with torch.inference_mode():  # both engines are warm: the reference and the check ran the probe batch
        for _ in range(TIMING_ROUNDS):
            best["torch"] = min(best["torch"], _elapsed(lambda: model.forward(xt), sync))
            best["onnxruntime"] = min(best["onnxruntime"], _elapsed(lambda: fwd(x), sync))
    return {"timing_batch": size, **{f"{k}_images_per_s": round(size / v, 1) for k, v in best.items()},
            "threads": torch.get_num_threads()}


def onnx_model_record() -> dict:
    """The engine record of a user's ONNX model: it is an ONNX Runtime session already."""
    return {"requested": "n/a", "engine": "onnxruntime", "note": "an ONNX model runs on onnxruntime"}




# --------------------------------------------------------------------------- torch's threads beside ORT
_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = 0


@contextlib.contextmanager
def quiet_torch(model: "LoadedModel"):
    """Torch on one intra-op thread inside the block when ``model`` scores on ONNX Runtime on the CPU.

    For score-only runs: their torch work (masks, in-fills, sums) is small, and torch's OpenMP workers,
    spinning after each of those operations, would otherwise compete with ORT's threads for the cores. Nested
    and concurrent blocks (two runs in the window's workers) share one count: the first sets one thread, the
    last restores the count it found. A model scoring on torch (or CUDA) is left as it is."""
    global _quiet_depth, _quiet_saved
    eng = getattr(model, "engine", None)
    if eng is None or eng.active != "onnxruntime" or model.device.type != "cpu":
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                torch.set_num_threads(_quiet_saved)
