"""Faithfulness metrics (torch, no Qt): deletion/insertion curves, confidence drop/increase, pointing game,
sanity checks, agreement between maps and against a reference map. See docs/methods.md §7.

Every metric is a spec registered by its module under ``specs/``; ``explorer.evaluation.registry`` is the one
path to them (their settings, ``compute``, the CSV rows). Import the submodules directly
(``explorer.evaluation.registry``, ``.causal``, ``.agreement``, ``.metrics``); this package imports nothing heavy
so ``explorer.evaluation.agreement`` and ``.registry`` stay numpy-only.
"""
