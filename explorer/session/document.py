"""The document: one image, one model choice, the runs made on them and the display layers of their maps.

Everything here is plain Python + numpy (no Qt, no torch). Objects change only through ``Session`` methods,
which emit events (``explorer.session.events.Signal``); views listen and repaint. Views never write display
state back except by calling these methods, and display changes never touch a run's data.

Staleness: every (re-)queue of a run bumps its ``generation``. Results carry the generation they were
computed for; ``Session.accept`` drops any result whose generation is not the run's current one, so a slow,
outdated computation can never overwrite a newer one. The old map stays until the new generation's first
result arrives.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from explorer.core.types import MethodResult
from explorer.session import display_fields
from explorer.session.display import defaults_of, distinct_colormap
from explorer.session.display_fields import BLEND_MODES, DISPLAY_MODES
from explorer.session.events import Signal
from explorer.session.model_choice import ModelChoice
from explorer.session.records import DisplayLayer, Run, RunStatus, Target

# the document's parts live in records.py; they are read from here too, as before the split
__all__ = ["BLEND_MODES", "DISPLAY_MODES", "DisplayLayer", "Layer", "Run", "RunStatus", "Session", "Target"]


class Session:
    """The evented document model the GUI displays (single-threaded: use it from one thread)."""

    def __init__(self) -> None:
        self.image: np.ndarray | None = None
        self.image_path: str | None = None
        self.model_choice = ModelChoice()
        self.model_info: dict = {}
        self.labels: list[str] = []
        self.predictions: list[tuple[int, str, float]] = []
        self.target: int | None = None
        self.runs: dict[int, Run] = {}
        self.layers: list[DisplayLayer] = []  # bottom to top
        self.active_layer_id: int | None = None
        # layers whose display the user has not touched: their defaults follow the map as it streams in (an
        # early partial RISE map is not yet on its baseline; the finished one is)
        self._auto_display: set[int] = set()
        # what views keep beside runs and layers, saved with the session (the Compare selection, evaluation
        # results): plain JSON values by view name, written only through set_view
        self.views: dict[str, Any] = {}
        # layers whose colormap the user has not chosen: shown beside another of the same colours, they take
        # another one (display.DISTINCT), so that two maps on screen together can be told apart
        self._auto_colormap: set[int] = set()
        self._run_ids = itertools.count(1)
        self._layer_ids = itertools.count(1)
        # events
        self.image_changed = Signal("image_changed")
        self.model_changed = Signal("model_changed")  # model choice or its loaded info
        self.predictions_changed = Signal("predictions_changed")
        self.target_changed = Signal("target_changed")
        self.run_added = Signal("run_added")  # (run)
        self.run_changed = Signal("run_changed")  # (run)
        self.run_removed = Signal("run_removed")  # (run)
        self.layers_changed = Signal("layers_changed")  # structure: added, removed, reordered
        self.layer_changed = Signal("layer_changed")  # (layer, field); field 'data' when its map changed
        self.active_layer_changed = Signal("active_layer_changed")  # (layer or None)
        self.views_changed = Signal("views_changed")  # (view name)

    # ------------------------------------------------------------------ image and model
    def set_image(self, rgb: np.ndarray, path: str | None = None, keep_runs: bool = False) -> None:
        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"the image must be H×W×3 uint8, got {rgb.shape} {rgb.dtype}")
        if not keep_runs:
            self.clear_runs()
            self.views = {}  # they name runs and layers of the previous photo (the widgets keep what they show)
        self.image, self.image_path = rgb, path
        self.predictions = []
        self.image_changed.emit()
        self.predictions_changed.emit()

    def set_model_choice(self, choice: ModelChoice) -> None:
        """What the user asked for; ``model_info`` keeps describing the loaded model until a new one arrives.

        Runs of another model stay (their maps can still be compared) but are stale: their layers are hidden
        and views mark them, so no map of the previous model is presented as this one's."""
        self.model_choice = choice
        self.model_changed.emit()
        for run in list(self.runs.values()):
            if self.is_stale(run):
                for layer in self.layers_of(run):
                    self.set_layer(layer, visible=False)
                self.run_changed.emit(run)
        active = self.active_layer()
        if active is not None and self.is_stale(self.runs[active.run_id]):
            current = [l for l in self.layers if not self.is_stale(self.runs[l.run_id])]
            self.set_active_layer(current[-1].id if current else None)

    def is_stale(self, run: Run) -> bool:
        """True when ``run`` was computed on another model than the one chosen now."""
        return run.model is not None and run.model != self.model_choice

    def current_runs(self) -> list[Run]:
        """The runs of this image and model, oldest first."""
        return [r for r in self.runs.values() if not self.is_stale(r)]

    def reassign_model(self, old: ModelChoice, new: ModelChoice, ids: set[int] | None = None) -> None:
        """Runs asked of ``old`` were computed on ``new`` (``old`` failed to load and the worker kept ``new``);
        ``ids``: only these runs (a reopened session's runs were computed on ``old`` itself, and stay its)."""
        for run in self.runs.values():
            if run.model == old and (ids is None or run.id in ids):
                run.model = new

    def set_model_info(self, info: dict, labels: list[str]) -> None:
        self.model_info = dict(info)
        self.labels = list(labels)
        if self.target is not None and not 0 <= self.target < len(self.labels):
            self.target = None
            self.target_changed.emit()
        self.model_changed.emit()

    def show_labels(self, labels: list[str]) -> None:
        """Class names to show until the model's own arrive (``set_model_info``): a reopened session's, while
        its model loads again, so its target reads as a class and not as "class 967"."""
        self.labels = list(labels)
        self.model_changed.emit()

    def set_predictions(self, preds: list[tuple[int, str, float]]) -> None:
        self.predictions = [(int(i), str(n), float(p)) for i, n, p in preds]
        self.predictions_changed.emit()

    def set_target(self, target: int | None) -> None:
        target = None if target is None else int(target)
        if target != self.target:
            self.target = target
            self.target_changed.emit()

    def effective_target(self) -> int | None:
        if self.target is not None:
            return self.target
        return self.predictions[0][0] if self.predictions else None

    def class_name(self, idx: int | None) -> str:
        if idx is None:
            return "top-1"
        return self.labels[idx] if 0 <= idx < len(self.labels) else f"class {idx}"

    def set_view(self, name: str, value: Any) -> None:
        """A view's saved state (JSON values: lists, dicts, numbers, strings); None forgets it."""
        if value is None:
            if self.views.pop(name, None) is not None:
                self.views_changed.emit(name)
        elif self.views.get(name) != value:
            self.views[name] = value
            self.views_changed.emit(name)

    # ------------------------------------------------------------------ runs
    def new_run(self, method: str, params: dict[str, Any], target: int | None = None, seed: int = 0,
                title: str = "") -> Run:
        run = Run(next(self._run_ids), method, dict(params), target, int(seed), title=title, model=self.model_choice)
        self.runs[run.id] = run
        self.run_added.emit(run)
        return run

    def requeue(self, run: Run, params: dict[str, Any] | None = None, target: int | None | Target = Target.KEEP,
                seed: int | None = None) -> Run:
        """A new generation of ``run`` (new params, target and/or seed); its current maps stay until replaced."""
        target = target if target is Target.KEEP or target is None else int(target)  # refused before any change
        seed = None if seed is None else int(seed)
        if params is not None:
            run.params = dict(params)
        if target is not Target.KEEP:
            run.target = target
        if seed is not None:
            run.seed = seed
        run.generation += 1
        run.status, run.progress, run.message, run.error = RunStatus.QUEUED, 0.0, "queued", ""
        self.run_changed.emit(run)
        return run

    def is_current(self, run_id: int, generation: int) -> bool:
        run = self.runs.get(run_id)
        return run is not None and run.generation == generation

    def mark_running(self, run_id: int, generation: int) -> bool:
        if not self.is_current(run_id, generation):
            return False
        run = self.runs[run_id]
        run.status, run.message = RunStatus.RUNNING, "running"
        self.run_changed.emit(run)
        return True

    def set_progress(self, run_id: int, generation: int, progress: float, message: str = "") -> bool:
        if not self.is_current(run_id, generation):
            return False
        run = self.runs[run_id]
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.RUNNING
        run.progress, run.message = float(progress), message
        self.run_changed.emit(run)
        return True

    def accept(self, run_id: int, generation: int, explanation: MethodResult, done: bool = False) -> bool:
        """Store a (partial or final) result; False (and nothing changes) when it is stale.

        A final result also records the parameters it was computed with (resolved: defaults filled in)."""
        if not self.is_current(run_id, generation):
            return False
        run = self.runs[run_id]
        run.explanation = explanation
        run.progress = float(explanation.progress)
        if done:
            run.params = dict(explanation.params)
            run.status = RunStatus.CANCELLED if explanation.cancelled else RunStatus.DONE
            run.message = str(run.status)
        elif run.status == RunStatus.QUEUED:
            run.status = RunStatus.RUNNING
        self._sync_layers(run)
        self.run_changed.emit(run)
        return True

    def fail(self, run_id: int, generation: int, message: str) -> bool:
        return self._stop(run_id, generation, RunStatus.ERROR, message)

    def cancel(self, run_id: int, generation: int, reason: str = "cancelled") -> bool:
        """The run stopped before any (new) result: it keeps the map it had, if any."""
        return self._stop(run_id, generation, RunStatus.CANCELLED, reason)

    def _stop(self, run_id: int, generation: int, status: RunStatus, why: str) -> bool:
        if not self.is_current(run_id, generation):
            return False
        run = self.runs[run_id]
        run.status, run.error, run.message = status, why, ("error" if status == RunStatus.ERROR else "cancelled")
        self.run_changed.emit(run)
        return True

    def set_run_title(self, run: Run, title: str) -> None:
        """The method's title (from the catalog, which may arrive after the run started), on its layers too."""
        title = str(title)
        if run.id not in self.runs or run.title == title:
            return
        run.title = title
        for layer in self.layers_of(run):
            layer.label = f"{layer.name} — {run.label}"
        self.run_changed.emit(run)

    def remove_run(self, run: Run) -> None:
        if run.id not in self.runs:
            return
        del self.runs[run.id]
        before = len(self.layers)
        self.layers = [l for l in self.layers if l.run_id != run.id]
        if self.active_layer_id is not None and self.layer(self.active_layer_id) is None:
            self.set_active_layer(self.layers[-1].id if self.layers else None)
        self.run_removed.emit(run)
        if len(self.layers) != before:
            self.layers_changed.emit()

    def clear_runs(self) -> None:
        for run in list(self.runs.values()):
            self.remove_run(run)

    def done_runs(self) -> list[Run]:
        return [r for r in self.runs.values() if r.explanation is not None]

    # ------------------------------------------------------------------ layers
    def _sync_layers(self, run: Run) -> None:
        exp = run.explanation
        mine = {l.name: l for l in self.layers if l.run_id == run.id}
        added = []
        for i, name in enumerate(exp.map_names):
            if name in mine:
                continue
            layer = DisplayLayer.for_map(next(self._layer_ids), run, exp, name, headline=i == 0)
            self.layers.append(layer)
            self._auto_display.add(layer.id)
            self._auto_colormap.add(layer.id)
            added.append(layer)
        changed = []
        for name, l in mine.items():
            if l.id in self._auto_display and name in exp.raw:
                for key, value in defaults_of(exp, name).items():
                    if getattr(l, key) != value:
                        setattr(l, key, value)
                        changed.append((l, key))
        if added:
            # a new run's headline map becomes the active layer and hides older runs' maps; maps that a
            # run adds later (BOREx's uncertainty after its prior stage) join hidden and leave the active one
            for l in self.layers:
                if l.run_id != run.id and l.visible and any(a.visible for a in added):
                    l.visible = False
            self.layers_changed.emit()
            if not mine:
                self.set_active_layer(added[0].id)
        # "data" first: a view that colours new maps off its thread has the render in flight when a default
        # that follows the map (the floor) changes next, and folds that change into it
        for l in self.layers:
            if l.run_id == run.id:
                self.layer_changed.emit(l, "data")
        for l, key in changed:
            self.layer_changed.emit(l, key)

    def layer(self, layer_id: int | None) -> DisplayLayer | None:
        for l in self.layers:
            if l.id == layer_id:
                return l
        return None

    def layers_of(self, run: Run) -> list[DisplayLayer]:
        return [l for l in self.layers if l.run_id == run.id]

    def layer_data(self, layer: DisplayLayer) -> np.ndarray | None:
        """The layer's map at the image's resolution (NaN where the model saw nothing), or None."""
        run = self.runs.get(layer.run_id)
        if run is None or run.explanation is None:
            return None
        return run.explanation.maps.get(layer.name)

    def active_layer(self) -> DisplayLayer | None:
        return self.layer(self.active_layer_id)

    def set_active_layer(self, layer_id: int | None) -> None:
        if layer_id != self.active_layer_id:
            self.active_layer_id = layer_id
            self.active_layer_changed.emit(self.layer(layer_id))

    def set_layer(self, layer: DisplayLayer, **changes: Any) -> None:
        """Change display fields (display_fields.FIELDS) and emit per field."""
        for key, value in changes.items():
            value = display_fields.checked(key, value)
            overrides = display_fields.BY_NAME[key].overrides_defaults
            if overrides == "display":
                self._auto_display.discard(layer.id)  # the user's choice: the defaults stop following the map
            elif overrides == "colormap":
                self._auto_colormap.discard(layer.id)
            if getattr(layer, key) != value:
                setattr(layer, key, value)
                self.layer_changed.emit(layer, key)
                if key == "visible" and value:
                    self._keep_apart(layer)

    def _keep_apart(self, layer: DisplayLayer) -> None:
        """``layer`` was just shown: when another visible layer has its colours and the user chose neither
        colormap, it takes a free one."""
        if layer.id not in self._auto_colormap:
            return
        taken = {l.colormap for l in self.layers if l.visible and l.id != layer.id}
        other = distinct_colormap(layer.signed, layer.colormap, taken)
        if other is not None:
            layer.colormap = other
            self.layer_changed.emit(layer, "colormap")

    def move_layer(self, layer: DisplayLayer, index: int) -> None:
        self.layers.remove(layer)
        self.layers.insert(max(0, min(index, len(self.layers))), layer)
        self.layers_changed.emit()

    def add_restored(self, run: Run, layers: list[DisplayLayer]) -> None:
        """Insert a run and its layers read back from a session file (ids kept); a run that names no model
        belongs to the current one."""
        if run.model is None:
            run.model = self.model_choice
        self.runs[run.id] = run
        self._run_ids = itertools.count(max(self.runs) + 1)
        self.layers.extend(layers)
        if self.layers:
            self._layer_ids = itertools.count(max(l.id for l in self.layers) + 1)
        self.run_added.emit(run)
        self.layers_changed.emit()


Layer = DisplayLayer  # old name kept (issue 32): a display layer, as against a network layer or a method's map
