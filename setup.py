"""Build hook: ship the repository's resources/ folder inside the package as ``explorer/_resources``.

Everything else (name, dependencies, entry point) is declared in pyproject.toml. A wheel (and so a
normal ``pip install``) gets samples, labels, icons and checkpoints under ``explorer/_resources``, where
explorer/resources.py looks first; an editable install copies nothing and keeps reading ``<repo>/resources``.
The sdist carries resources/ through MANIFEST.in.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# What never goes into a wheel even if it lies in resources/ (screenshots live in docs/).
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "screenshots")


class build_py_with_resources(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # editable installs read <repo>/resources directly
        src = HERE / "resources"
        if not src.is_dir():
            raise SystemExit(f"setup.py: {src} is missing; cannot build a package without its resources")
        dst = Path(self.build_lib) / "explorer" / "_resources"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=IGNORE)


if __name__ == "__main__":  # setuptools' build backend runs this file as __main__; tests import the hook
    setup(cmdclass={"build_py": build_py_with_resources})
