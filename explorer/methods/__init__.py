"""Explanation methods. Importing this package registers every method module found in it."""

import importlib
import pkgutil

from explorer.methods.base import METHODS, Context, Method, explain, get_method, method_names, register, run

_SKIP = {"base"}

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _SKIP and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Context", "Method", "explain", "get_method", "method_names", "register", "run"]
