"""Before Qt starts on Linux: which system libraries does its xcb platform plugin miss?

When one is missing, Qt prints "could not load the Qt platform plugin xcb" and aborts the process (no
exception to catch), naming none of them. So before the QApplication exists we resolve the plugin's
dependencies the way the dynamic loader will (``ldd`` on ``PySide6/Qt/plugins/platforms/libqxcb.so``, which
follows Qt's own RPATH; ``dlopen`` of the known list where ``ldd`` is absent), map each missing library to
its Debian/Ubuntu package and say, in one line, the ``apt-get`` command that fixes it.

Nothing here imports Qt or torch: it must run when Qt itself cannot. ``check_display`` comes first: without
a display, Qt aborts as well.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

from explorer.core.errors import ExplorerError


def check_display() -> None:
    """Refuse in one line, before Qt aborts the process, when there is no display (``explorer`` and
    ``explorer.view``)."""
    if sys.platform.startswith("linux") and not any(
            os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise ExplorerError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): run it in a "
                            "desktop session, set QT_QPA_PLATFORM=offscreen to use --screenshot headless, or use "
                            "the headless commands (explorer explain ..., see explorer --help)")


# library -> Debian/Ubuntu package (names are the same on Debian 11/12 and Ubuntu 20.04-24.04)
PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
}

# what Qt 6's libqxcb.so (with libQt6XcbQpa) links against: the dlopen fallback checks exactly these
QT6_XCB_NEEDS = ("libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-image.so.0",
                 "libxcb-render-util.so.0", "libxcb-xkb.so.1", "libxkbcommon-x11.so.0", "libxkbcommon.so.0",
                 "libxcb-randr.so.0", "libxcb-shape.so.0", "libxcb-xfixes.so.0", "libxcb-shm.so.0",
                 "libxcb-sync.so.1", "libxcb-render.so.0", "libxcb-util.so.1", "libxcb.so.1", "libX11-xcb.so.1",
                 "libX11.so.6", "libfontconfig.so.1", "libfreetype.so.6", "libEGL.so.1", "libGL.so.1")
# what the README's first lines tell a bare desktop to install (the packages of the above a desktop may lack)
DESKTOP_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
                    "libxcb-xkb1", "libxkbcommon-x11-0", "libxcb-randr0", "libxcb-shape0", "libegl1", "libgl1")


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so``, found without importing PySide6 (None when not installed this way)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return None
    p = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return p if p.is_file() else None


def missing_by_ldd(plugin: Path, run: Callable = subprocess.run) -> list[str] | None:
    """Libraries ``ldd`` reports as 'not found' (each once, in order), or None when ldd cannot tell."""
    if shutil.which("ldd") is None:
        return None
    try:
        r = run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0 and "not found" not in r.stdout:
        return None
    out = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+not found", line)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def missing_by_dlopen(names=QT6_XCB_NEEDS, load: Callable = ctypes.CDLL) -> list[str]:
    """The known libraries the loader cannot open (the fallback where ldd is absent)."""
    out = []
    for n in names:
        try:
            load(n)
        except OSError:
            out.append(n)
    return out


def install_line(missing: list[str]) -> str:
    pkgs = list(dict.fromkeys(PACKAGES[m] for m in missing if m in PACKAGES))
    unknown = [m for m in missing if m not in PACKAGES]
    line = (f"Qt cannot open a window: its xcb platform plugin needs system libraries that are missing: "
            f"{', '.join(missing)}.")
    if pkgs:
        line += f" Install them with: sudo apt-get install {' '.join(pkgs)}"
    if unknown:
        line += f" (find the package of {', '.join(unknown)} with: apt-file search NAME)"
    return line


def skip_reason(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why the check does not apply here (None: it does)."""
    if not platform.startswith("linux"):
        return "not Linux"
    qpa = environ.get("QT_QPA_PLATFORM", "").strip()
    if qpa and not qpa.startswith("xcb"):
        return f"QT_QPA_PLATFORM={qpa} does not use xcb"
    if not environ.get("DISPLAY"):
        # no X server: Qt would try Wayland (WAYLAND_DISPLAY) or fail with its own message about the display
        return "no DISPLAY: Qt will not use xcb (on Wayland it uses its wayland plugin; without either it says so)"
    return None


def check_xcb(environ=os.environ, platform: str = sys.platform, plugin: Path | None | str = "find",
              ldd: Callable = missing_by_ldd, dlopen: Callable = missing_by_dlopen) -> str | None:
    """None when Qt's xcb plugin can load (or the check does not apply), else the one-line fix."""
    if skip_reason(environ, platform) is not None:
        return None
    plugin = xcb_plugin() if plugin == "find" else plugin
    if plugin is None:
        return None  # not a pip-installed PySide6 (a system Qt, a frozen app): Qt's own message will do
    missing = ldd(plugin)
    if missing is None:
        missing = dlopen()
    return install_line(missing) if missing else None
