"""``explorer evaluate --ray ADDRESS``: the photos as Ray tasks, one photo per task (Ray is optional:
``pip install explorer[ray]``).

Each task loads the model once per worker process (cached), runs the per-photo function it is handed
(``runner.evaluate_photo``, which ``runner.execute`` passes in: this module sits below the runner) and writes its
CSVs into the shared output folder, so results stream in as tasks end and the folder stays resumable: a
task that is retried after its worker died finds the methods that were already written and does only the
rest. A task asks for one GPU where the cluster has GPUs, one CPU otherwise. The driver merges the summary
once, after the last task.

``ADDRESS``: ``local`` (start a cluster on this machine, or use the one ``ray.init`` already started in
this process), ``auto`` (the cluster ``ray start`` runs on this machine) or ``HOST:PORT`` /
``ray://HOST:PORT``; a remote address is probed first, so one that does not answer is a one-line error
within seconds, not a hang.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable

from explorer.core.errors import ExplorerError, ParamError
from explorer.evaluation.config import EvalConfig

MAX_RETRIES = 3          # a worker that dies (killed, out of memory) gets its task re-run this often
PROBE_TIMEOUT_S = 3.0

_WORKER: dict[str, Any] = {}  # per worker process: the model and method instances, keyed by their options


def import_ray():
    try:
        import ray
    except ImportError:
        raise ExplorerError(
            "--ray needs Ray, which is not installed: pip install 'explorer[ray]' (or pip install ray)") from None
    return ray


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[str, int]:
    """(host, port) of ``HOST:PORT`` or ``ray://HOST:PORT`` once a TCP connection there succeeds."""
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port_s = rest.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ParamError(f"--ray {address!r}: expected local, auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port_s)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExplorerError(f"--ray {address}: no Ray cluster answers there within {timeout:g} s "
                            f"({exc.strerror or type(exc).__name__}); start one with `ray start --head` "
                            "or use --ray local") from None
    return host, int(port_s)


def check_address(address: str) -> None:
    """Fail fast: Ray importable, and a remote address answering (``local`` / ``auto`` are checked on join)."""
    import_ray()
    if address not in ("local", "auto"):
        probe(address)


def connect(address: str, num_cpus: int | None = None) -> tuple[Any, bool]:
    """(ray, started_here). Joins or starts the cluster named by ``address``."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
        return ray, True
    if address != "auto":
        probe(address)
    try:
        ray.init(address=address, include_dashboard=False) if address == "auto" else ray.init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ExplorerError(f"--ray {address}: cannot join the Ray cluster: {str(exc).splitlines()[0]}") from None
    return ray, True


def _model_key(config: EvalConfig) -> str:
    return repr([sorted(config.model.items()), config.params, config.methods])


def photo_task(config: EvalConfig, photo: str, boxes: dict, out: str, evaluate: Callable) -> dict:
    """What one Ray task runs: ``evaluate(model, instances, photo, config, boxes, out)`` (the photo's missing
    results, written into ``out``: ``runner.evaluate_photo``); a summary dict back."""
    from explorer.evaluation.inputs import split_params
    from explorer.methods import get_method

    key = _model_key(config)
    if _WORKER.get("key") != key:
        from explorer.models import load_model

        model = load_model(**config.model)
        real = [m for m in config.methods if m in _method_names()]
        values = split_params(config.params, real)
        _WORKER.clear()
        _WORKER.update(key=key, model=model, instances={m: get_method(m)(model, **values[m]) for m in real})
    r = evaluate(_WORKER["model"], _WORKER["instances"], Path(photo), config, boxes, Path(out))
    return {"name": r.name, "computed": r.computed, "reused": r.reused, "skipped": r.skipped, "pid": os.getpid()}


def _method_names() -> list[str]:
    from explorer.methods import method_names

    return list(method_names())


def run_with_ray(config: EvalConfig, photos: list[Path], boxes: dict, out: Path, evaluate: Callable,
                 bar=None) -> dict:
    """Run ``evaluate`` (see ``photo_task``) on every photo as a Ray task on the cluster at ``config.ray``;
    returns {"computed", "reused", "skipped", "pids"} once all ended. ``bar.update(units_done, message)`` after
    each photo."""
    ray, started = connect(config.ray, config.ray_cpus)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        opts = {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": 1}
        task = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False, **opts)(photo_task)
        pending = {task.remote(config, str(p), boxes, str(out), evaluate): p for p in photos}
        totals: dict[str, Any] = {"computed": 0, "reused": 0, "skipped": [], "pids": set()}
        done_units = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=None)
            for ref in ready:
                p = pending.pop(ref)
                try:
                    r = ray.get(ref)
                    totals["computed"] += r["computed"]
                    totals["reused"] += r["reused"]
                    totals["skipped"] += [tuple(s) for s in r["skipped"]]
                    totals["pids"].add(r["pid"])
                    msg = f"{p.name}: {r['computed']} computed, {r['reused']} done before"
                except Exception as exc:  # noqa: BLE001 - a task that failed for good: record it, go on
                    reason = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
                    totals["skipped"].append((p.name, f"Ray task failed after {MAX_RETRIES} retries: {reason}"))
                    msg = f"{p.name}: failed"
                done_units += len(config.methods)
                if bar is not None:
                    bar.update(done_units, msg)
        return totals
    finally:
        if started:
            ray.shutdown()
