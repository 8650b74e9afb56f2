"""One module per metric (or family of metrics): its ``MetricSpec``s, their ``Params`` and the adapter from a
``MetricCall`` to the module that computes it. Importing this package registers them all.

The built-in families come first, in the order their rows have always been written in ``explorer evaluate``'s
per-image CSVs; any other module of the package follows, by name. Adding a metric is adding a module here
(and its entry in docs/methods.md §7): nothing else lists metrics.
"""

import importlib
import pkgutil

_BUILT_IN = ("causal", "confidence", "pointing", "reference", "agreement", "sanity", "road", "flipping", "mprt",
             "removal_gain")

for _name in _BUILT_IN + tuple(sorted(i.name for i in pkgutil.iter_modules(__path__)
                                      if i.name not in _BUILT_IN and not i.name.startswith("_"))):
    importlib.import_module(f"{__name__}.{_name}")
