"""Deletion and insertion (RISE, Petsiuk 2018): P_target as the top pixels go to a substrate, or come back onto
one; the curves of explorer/evaluation/causal.py."""

from __future__ import annotations

from typing import Any, Callable

from explorer.core.params import Param, Params
from explorer.evaluation.metric_spec import MetricSpec, curve_result, register

STEP = Param("step", "int", None, "pixels per deletion/insertion step (default: the protocol's)", low=1)
DELETION_SUBSTRATE = Param("deletion_substrate", "str", "zero", "zero (default), black, blur[:SIGMA[:KERNEL]], "
                           "mean, ...", picker="substrate")
INSERTION_SUBSTRATE = Param("insertion_substrate", "str", "blur", "blur (default: kernel 11, sigma 5), zero, "
                            "black, ...", picker="substrate")


def _causal(mode: str) -> Callable[[Any], dict]:
    def compute(call) -> dict:
        from explorer.evaluation.causal import causal_curve, protocol_step

        o = call.options
        sub = o.deletion_substrate if mode == "deletion" else o.insertion_substrate
        step = o.step
        if step is None and call.protocol:
            step = protocol_step(call.protocol, call.context.x.shape[-2:])
        c = causal_curve(call.model, call.image_rgb, call.saliency, mode=mode, step=step, substrate=sub,
                         context=call.context, cancel=call.cancel)
        out = curve_result(c)
        if call.keep_frames:
            from explorer.evaluation.causal import CurveFrames

            out["frames"] = {mode: CurveFrames(call.model, call.image_rgb, call.saliency, c.target, mode=mode,
                                               step=c.step, substrate=sub, context=call.context)}
        if call.protocol:  # explorer evaluate records how the steps were chosen, after the step
            out = {"auc": out["auc"], "step": out["step"], "protocol": call.protocol if not o.step
                   else f"step {o.step} px", **out}
        return out
    return compute


def _ins_minus_del(done: dict[str, dict]) -> list[tuple[str, str, Any, Any]]:
    if "deletion" not in done:
        return []
    return [("causal", "ins_minus_del", done["insertion"]["auc"] - done["deletion"]["auc"], "")]


register(MetricSpec("deletion", "RISE deletion curve: P_target as the top pixels go to the substrate", "lower AUC",
                    _causal("deletion"), Params(STEP, DELETION_SUBSTRATE), score_only=True))
register(MetricSpec("insertion", "RISE insertion curve: P_target as the top pixels return onto a blurred image",
                    "higher AUC", _causal("insertion"), Params(STEP, INSERTION_SUBSTRATE), score_only=True,
                    combine=_ins_minus_del))
