"""What an ``explorer evaluate`` run is asked to do, as plain values: the command line fills an ``EvalConfig``
from its options, a Python caller builds one directly (``explorer.evaluation.runner.prepare_evaluation``).

Importing this module is cheap (no numpy, no torch): the command line's parser takes its defaults from here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from explorer.core.errors import ParamError, UnknownNameError

if TYPE_CHECKING:
    from explorer.evaluation.registry import Options

DEFAULT_METRICS = ("deletion", "insertion", "confidence")
RANDOM = "random"  # a baseline "method": a seeded random 7x7 grid upsampled (explorer.evaluation.base.random_map)


def has_removal_gain() -> bool:
    return importlib.util.find_spec("explorer.evaluation.removal_gain") is not None


def metric_names() -> tuple[str, ...]:
    from explorer.evaluation.registry import metric_names as all_names

    return tuple(m for m in all_names() if m != "removal_gain" or has_removal_gain())


def _default_options() -> "Options":
    from explorer.evaluation.registry import Options

    return Options()


@dataclass
class EvalConfig:
    """One evaluation run. ``options`` holds every metric's settings (substrates, steps, seed, top-k, ...);
    ``model`` is ``explorer.models.load_model``'s arguments, so a Ray worker loads the same model."""

    methods: list[str]
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    params: list[str] = field(default_factory=list)  # "METHOD.K=V", or "K=V" for every method that has K
    target: int | str | None = None                  # every photo's class (default: each photo's top-1)
    protocol: str = "rise"                           # deletion/insertion steps: "rise" or "quick"
    options: Options = field(default_factory=_default_options)
    boxes: str | None = None                         # pointing game: JSON {photo: box or mask path}
    reference: str | None = None                     # folder of reference maps (PCC/SIM)
    shard: tuple[int, int] = (0, 1)                  # (i, n): every n-th photo from i
    local_rank: int | None = None                    # torchrun's LOCAL_RANK: the GPU when no device is set
    limit: int | None = None                         # at most this many photos (after sharding)
    ray: str | None = None                           # run the photos as Ray tasks on this cluster address
    ray_cpus: int | None = None                      # with ray="local": CPUs of the local cluster
    model: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse settings that cannot work before anything is read or loaded (one line naming the option);
        the files they name are checked by ``runner.prepare_evaluation``."""
        if not self.methods:
            raise ParamError("no methods (--methods a,b,c) given")
        names = metric_names()
        if not self.metrics:
            raise ParamError("no metrics given")
        for m in self.metrics:
            if m not in names:
                if m == "removal_gain":
                    raise ParamError("metric 'removal_gain' is not available yet "
                                     "(explorer/evaluation/removal_gain.py is missing)")
                raise UnknownNameError("metric", m, list(names))
        i, n = self.shard
        if n < 1 or not 0 <= i < n:
            raise ParamError(f"--shard {i}/{n}: need n >= 1 and 0 <= i < n")
        if "reference" in self.metrics and not self.reference:
            raise ParamError("metric 'reference' needs --reference DIR (reference maps named like the images)")
        if self.ray and n > 1:
            raise ParamError("--ray and --shard do not mix: Ray spreads the photos itself")
        self.options.validate()
