"""Agreement with a reference map (e.g. human gaze): Pearson correlation and histogram intersection (SIM)."""

from __future__ import annotations

from explorer.evaluation.metric_spec import MetricSpec, register


def _reference(call) -> dict:
    from explorer.core.errors import ParamError
    from explorer.evaluation import agreement

    if call.reference_map is None:
        raise ParamError("metric 'reference' needs a reference map")
    return {"pcc": agreement.pcc(call.image_map, call.reference_map),
            "sim": agreement.sim(call.image_map, call.reference_map)}


register(MetricSpec("reference", "PCC and SIM against a reference map (e.g. gaze)", "higher", _reference,
                    needs=("reference",)))
