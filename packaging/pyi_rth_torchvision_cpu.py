"""PyInstaller runtime hook (packaging/explorer.spec): let torchvision import without its compiled ops.

The only torchvision wheels on PyPI for Linux are built against CUDA torch, so next to a CPU torch their
``_C`` extension cannot load (it links libtorch_cuda). torchvision tolerates that, except that
``torchvision._meta_registrations`` registers a fake kernel for ``torchvision::nms``/``qnms`` and fails when
the operator was never defined. explorer uses torchvision only for classifiers (no detection ops), so when
``_C`` is missing we define the two operator schemas (no kernels: calling them still fails clearly) just
before that module runs. Nothing is imported at start: the hook waits for torchvision's own import. With a
CPU build of torchvision (PIP_EXTRA/TORCHVISION_SPEC in freeze.sh) ``_C`` loads and this does nothing.
"""

import importlib.abc
import sys

_KEEP = []  # the Library object must stay alive for its definitions to stay registered


class _DefineMissingTorchvisionOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision._meta_registrations":
            return None
        sys.meta_path.remove(self)
        try:
            import torch
            import torchvision.extension

            if not torchvision.extension._has_ops():
                lib = torch.library.Library("torchvision", "DEF")
                for op in ("nms", "qnms"):
                    lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                _KEEP.append(lib)
        except Exception:  # noqa: BLE001 - never stop the app here; torchvision will report its own error
            pass
        return None  # the regular finders load the module


sys.meta_path.insert(0, _DefineMissingTorchvisionOps())
