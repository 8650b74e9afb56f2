"""The pointing game (Zhang 2016): is the map's maximum inside the object's box or mask, within a tolerance."""

from __future__ import annotations

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import MetricSpec, register

TOLERANCE = Param("tolerance", "int", 15, "pointing game tolerance in pixels (default 15)", low=0)


def _pointing(call) -> dict:
    from explorer.core.errors import ParamError
    from explorer.evaluation import agreement

    if call.box is None and call.mask is None:
        raise ParamError("metric 'pointing' needs a box or a mask of the object")
    r = agreement.pointing_game(call.image_map, box=call.box, mask=call.mask, tolerance=call.options.tolerance)
    return {"hit": r["hit"], "distance": r["distance"]}


register(MetricSpec("pointing", "pointing game: is the map's maximum inside the object's box", "higher hit",
                    _pointing, Params(TOLERANCE), needs=("boxes",)))
