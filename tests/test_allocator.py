"""The allocator tuning: applied once, recorded, and left alone when the user chose or off glibc."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from explorer.core import allocator


def _fresh(env_extra: dict, code: str = "from explorer.core import allocator; print(allocator.tune())") -> str:
    import os

    env = {k: v for k, v in os.environ.items() if k not in allocator.USER_VARIABLES and k != "EXPLORER_MALLOC"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_fresh_process_gets_the_thresholds():
    import platform

    said = _fresh({})
    if platform.libc_ver()[0] == "glibc":
        assert said.startswith("glibc mallopt") and str(allocator.MMAP_THRESHOLD) in said
    else:
        assert "nothing to tune" in said


def test_users_variables_win():
    said = _fresh({"MALLOC_MMAP_THRESHOLD_": "1000000"})
    assert said == "left to the user's MALLOC_MMAP_THRESHOLD_"


def test_opt_out():
    assert _fresh({"EXPLORER_MALLOC": "default"}).startswith("glibc defaults")


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("musl", "1.2"))
    for v in allocator.USER_VARIABLES + ("EXPLORER_MALLOC",):
        monkeypatch.delenv(v, raising=False)
    assert "nothing to tune" in allocator.tune()
    assert allocator.tune() is allocator.tune()  # once per process


def test_every_loaded_model_records_it(tiny_model):
    assert json.dumps(tiny_model.describe()["allocator"])
    assert tiny_model.describe()["allocator"] != "not applied"
