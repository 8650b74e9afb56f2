"""The network, for the loaders that may download weights (torchvision, timm, Hugging Face): whether downloads
are allowed (``EXPLORER_OFFLINE``), a quick reachability check so a machine without network fails in seconds,
a socket timeout, and the hub's offline mode for one call.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager


@contextmanager
def network_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """A quick TCP check, so that a machine without network fails in seconds instead of retrying."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def hub_offline(offline: bool):
    """Hugging Face offline mode for this call only (the hub reads its flag once, at import)."""
    if not offline:
        yield
        return
    import huggingface_hub.constants as hub

    old_env, old_flag = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def downloads_allowed(allow: bool | None) -> bool:
    if allow is not None:
        return allow
    return os.environ.get("EXPLORER_OFFLINE", "") not in ("1", "true", "yes")
