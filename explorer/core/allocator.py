"""Put glibc's allocator in the state where CPU forwards run at full speed, from a process's first forward.

What was measured (docs/performance.md has the figures): in a fresh process, EfficientNet-Lite0 at batch 4
runs ~1.6x slower than in a process that has once allocated and freed large buffers. glibc serves blocks
above its mmap threshold (128 KiB at start) with fresh mmap/munmap calls, so every forward pays page faults
and zeroing for its activations; freeing a large mmapped block raises the threshold dynamically, which is
why a warmed process is fast. Fixing the threshold high (256 MiB) and the trim threshold higher (1 GiB)
from the start keeps activations in the reused heap: the fast state, with no warm-up forward to pay.

Applied by every entry point (CLI, GUI worker, Python API) through :func:`tune`. It does nothing off
glibc (macOS, Windows, musl), when the user set any MALLOC_*_ variable themselves (their choice wins),
or when EXPLORER_MALLOC=default asks for glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# mallopt parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                  "GLIBC_TUNABLES")

_state: str | None = None


def tune() -> str:
    """Apply the thresholds once per process; returns what was done (recorded in manifests)."""
    global _state
    if _state is None:
        _state = _apply()
    return _state


def state() -> str:
    """What :func:`tune` did in this process, or ``"not applied"``."""
    return _state or "not applied"


def _apply() -> str:
    if os.environ.get("EXPLORER_MALLOC", "").lower() == "default":
        return "glibc defaults (EXPLORER_MALLOC=default)"
    user = [v for v in USER_VARIABLES if v in os.environ]
    if user:
        return f"left to the user's {', '.join(user)}"
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return f"not glibc ({sys.platform} {platform.libc_ver()[0] or 'unknown libc'}): nothing to tune"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "glibc without mallopt: nothing tuned"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not ok:
        return "glibc refused mallopt: defaults kept"
    return f"glibc mallopt mmap_threshold={MMAP_THRESHOLD} trim_threshold={TRIM_THRESHOLD}"
