"""A run's resumable state (``Explanation.info["state"]``) in a session file: its arrays in the NPZ, the rest
in the JSON, read back with the same types.

A state is plain values (str, int, float, bool, None), lists, tuples, string-keyed dicts and numpy arrays
(the running sums of RISE, the probes of BOREx). JSON has no tuple and no array, and a method compares the
state it is handed with what it would compute (BOREx's fingerprint holds tuples), so both are tagged:
``{"__tuple__": [...]}`` and ``{"__array__": "NPZ KEY"}``. A session file is hostile input
(docs/security.md): decoding accepts nothing else, bounds the nesting, and takes arrays only from the NPZ
(already checked by ``io.arrays.read_npz``: plain numbers, sizes within limits). A method still checks that
the state fits the run it resumes (shapes, fingerprint) and restarts when it does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_DEPTH = 12
_TUPLE, _ARRAY = "__tuple__", "__array__"


def encode_state(state: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """The JSON form of ``state``; its arrays go into ``arrays`` under keys starting with ``prefix``."""

    def enc(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("a run state nested too deeply")
        if isinstance(v, np.ndarray):
            key = f"{prefix}_{len([k for k in arrays if k.startswith(prefix + '_')])}"
            arrays[key] = np.ascontiguousarray(v)
            return {_ARRAY: key}
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, dict):
            return {str(k): enc(x, depth + 1) for k, x in v.items()}
        if isinstance(v, tuple):
            return {_TUPLE: [enc(x, depth + 1) for x in v]}
        if isinstance(v, list):
            return [enc(x, depth + 1) for x in v]
        if v is None or isinstance(v, (str, bool, int, float)):
            return v  # a non-finite float is written as NaN/Infinity, which json reads back
        raise TypeError(f"a run state holds a {type(v).__name__}, which a session file cannot keep")

    return enc(state, 0)


def decode_state(doc: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``encode_state``'s inverse; ValueError/TypeError on anything it did not write."""

    def dec(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("a run state nested too deeply")
        if isinstance(v, dict):
            if set(v) == {_ARRAY}:
                key = v[_ARRAY]
                if not isinstance(key, str) or key not in arrays:
                    raise ValueError(f"a run state names the array {key!r}, which the arrays file does not hold")
                return arrays[key]
            if set(v) == {_TUPLE}:
                if not isinstance(v[_TUPLE], list):
                    raise TypeError("a tagged tuple in a run state must hold a list")
                return tuple(dec(x, depth + 1) for x in v[_TUPLE])
            return {str(k): dec(x, depth + 1) for k, x in v.items()}
        if isinstance(v, list):
            return [dec(x, depth + 1) for x in v]
        if v is None or isinstance(v, (str, bool, int, float)):
            return v
        raise TypeError(f"a run state holds a {type(v).__name__}")

    return dec(doc, 0)
