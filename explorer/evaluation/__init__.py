"""Faithfulness metrics (torch, no Qt): deletion/insertion curves, confidence drop/increase, pointing game,
sanity checks, agreement between maps and against a reference map. See docs/methods.md §7.

Import the submodules directly (``explorer.evaluation.causal``, ``.agreement``, ``.metrics``); this package
imports nothing heavy so ``explorer.evaluation.agreement`` stays numpy-only.
"""
