"""Trained explainer network (Stalder et al., NeurIPS 2022): class masks for every class in one forward pass.

``model``: the head on the classifier's frozen features, checkpoints and the classifier check;
``train``: losses, augmentation, the trainer (run by ``explorer train-explainer``); ``method``: the registered
``explainer`` method.
"""

from explorer.methods.explainer_net import method  # noqa: F401 - registers "explainer"
