"""Where a model comes from: the one declaration of the ``--model`` / ``load_model`` spec grammar.

A spec is an embedded model's name (or ``default``), an architecture by prefix (``torchvision:NAME``,
``timm:NAME``), a Hugging Face classifier (``hf:FOLDER_OR_REPO_ID``), or a file, told apart by its suffix
(case-insensitively: ``MODEL.ONNX`` is an ONNX file like ``model.onnx``) or by a path separator. The loader
dispatches on the source found here (models/loader.py), the argument type checks a spec against it
(core/argtypes.py) and the CLI's help and ``explorer models`` list it, so a new source is one entry here plus
its loader. Torch-free: the CLI builds its parsers from this without importing torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from explorer.core.types import EMBEDDED_MODELS


class SourceKind(StrEnum):
    EMBEDDED = "embedded"
    TORCHVISION = "torchvision"
    TIMM = "timm"
    HF = "hf"
    TORCH_FILE = "torch file"  # TorchScript, or a pickled nn.Module with trust
    ONNX = "onnx"


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    syntax: str  # how a spec of this source is written, as the help and the refusals show it
    prefix: str = ""  # a spec starting with it is of this source (the rest names the model)
    suffixes: tuple[str, ...] = ()  # a file whose name ends so (lower case here; matched in any case)
    what: str = ""  # a few words on the source, in the CLI help and ``explorer models``
    detail: str = ""  # more words, in the CLI help only
    takes_weights: bool = False  # an architecture by name, whose weights ``--weights FILE`` may give

    def shown(self) -> list[str]:
        """This source's lines in ``explorer models`` and in an unknown-model refusal."""
        if self.kind == SourceKind.EMBEDDED:
            return list(EMBEDDED_MODELS)
        return [f"{self.syntax} ({self.what})" if self.what else self.syntax]

    def help(self) -> str:
        """This source in the ``--model`` help."""
        if self.kind == SourceKind.EMBEDDED:
            return ", ".join([f"{EMBEDDED_MODELS[0]} (default)", *EMBEDDED_MODELS[1:]])
        notes = [n for n in (self.what, self.detail) if n]
        if len(self.suffixes) > 1:
            notes.append("also " + ", ".join(self.suffixes[1:]))
        return f"{self.syntax} ({'; '.join(notes)})" if notes else self.syntax


DEFAULT_SPEC = "default"  # stands for the first embedded model

MODEL_SOURCES: tuple[ModelSource, ...] = (
    ModelSource(SourceKind.EMBEDDED, "NAME"),
    ModelSource(SourceKind.TORCHVISION, "torchvision:NAME", prefix="torchvision:", takes_weights=True),
    ModelSource(SourceKind.TIMM, "timm:NAME", prefix="timm:", takes_weights=True),
    ModelSource(SourceKind.HF, "hf:FOLDER_OR_REPO_ID", prefix="hf:",
                detail="a Hugging Face save_pretrained folder or a cached hub model"),
    ModelSource(SourceKind.TORCH_FILE, "FILE.pt", what="TorchScript",
                suffixes=(".pt", ".pth", ".ts", ".jit", ".torchscript", ".pkl", ".bin")),
    ModelSource(SourceKind.ONNX, "FILE.onnx", suffixes=(".onnx",)),
)
SOURCES: dict[SourceKind, ModelSource] = {s.kind: s for s in MODEL_SOURCES}
MODEL_FILE_SUFFIXES: tuple[str, ...] = tuple(x for s in MODEL_SOURCES for x in s.suffixes)
PREFIXED: tuple[ModelSource, ...] = tuple(s for s in MODEL_SOURCES if s.prefix)


def file_source(path: str | os.PathLike) -> ModelSource:
    """The source of a model file by its suffix, in any case; a file with another suffix is read as torch."""
    suffix = PurePath(path).suffix.lower()
    return next((s for s in MODEL_SOURCES if suffix in s.suffixes), SOURCES[SourceKind.TORCH_FILE])


def looks_like_file(spec: str) -> bool:
    """A spec written as a file: a model file's suffix (any case) or a path separator in it."""
    return PurePath(spec).suffix.lower() in MODEL_FILE_SUFFIXES or os.sep in spec


def source_of(spec: str) -> ModelSource | None:
    """The source ``spec`` is written for, from its spelling alone (no disk access); None: none of them (a
    bare word may still be an existing file, which the caller checks)."""
    spec = spec.strip()
    if spec in EMBEDDED_MODELS or spec == DEFAULT_SPEC:
        return SOURCES[SourceKind.EMBEDDED]
    for s in PREFIXED:
        if spec.startswith(s.prefix):
            return s
    return file_source(spec) if looks_like_file(spec) else None


def model_after_prefix(spec: str) -> str:
    """What follows a prefixed source's ``prefix:`` (the architecture name, the folder or repo id)."""
    return spec.split(":", 1)[1]


def listing() -> list[str]:
    """Every source as ``explorer models`` lists it and an unknown-model refusal names it."""
    return [line for s in MODEL_SOURCES for line in s.shown()]


def cli_help() -> str:
    """The ``--model`` help: every source, with its few words."""
    return ", ".join(s.help() for s in MODEL_SOURCES)


def weights_help() -> str:
    """The ``--weights`` help: the sources whose architecture it gives weights to."""
    return f"weights file for a {'/'.join(s.prefix for s in MODEL_SOURCES if s.takes_weights)} architecture"
