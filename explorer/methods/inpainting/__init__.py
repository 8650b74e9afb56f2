"""Training the project's learned in-painter (``explorer train-inpainter``); the network itself and its
checkpoint format are ``explorer.perturb.inpainter``, where the ``learned`` in-filler reads them."""
