"""The implementation behind the public Python API (``explorer.load_model``, ``explorer.explain`` ...).

Users import from ``explorer`` only; the modules here are internal and may change. Each one has one job:
``model`` wraps an in-memory module or a spec, ``images`` turns any image form into H×W×3 uint8,
``result`` is the public ``Explanation``, ``run`` drives methods and metrics, ``viewer`` opens the window,
``listing`` lists the methods.
"""
