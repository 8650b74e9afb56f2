"""Agreement between the methods' maps of one photo (Spearman, top-k IoU): it compares several maps, so it has
no per-map ``compute``; ``explorer evaluate`` writes its rows per photo (scoring.agreement_rows)."""

from __future__ import annotations

from explorer.core.params import Params
from explorer.evaluation.metric_spec import TOPK, MetricSpec, register

register(MetricSpec("agreement", "Spearman and top-k IoU between the methods' maps", "-", None, Params(TOPK),
                    needs=("methods",)))
