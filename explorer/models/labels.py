"""Class names: the embedded ImageNet-1k list, and a user's labels file read as untrusted input."""

from __future__ import annotations

import json
from pathlib import Path

from explorer.core.errors import FileError

MAX_LABELS_BYTES = 16 << 20
MAX_LABEL_CHARS = 1000


def imagenet_labels() -> list[str]:
    from explorer import resources

    return resources.path("labels", "imagenet1k.txt").read_text(encoding="utf-8").splitlines()


def read_labels(path: str | Path) -> list[str]:
    """A labels file: one name per line, or JSON (a list, or a {index: name} mapping).

    Read as untrusted input: a size cap before reading (ImageNet-21k's names are 300 KB), text only (a NUL
    byte means a binary file), every name one short line. A count that does not fit the model's outputs
    is refused by ``validate_output``.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise FileError(p, "is a folder, not a labels file")
        size = p.stat().st_size
        if size > MAX_LABELS_BYTES:
            raise FileError(p,
                            f"is {size / 1e6:.0f} MB, too large for a labels file (limit {MAX_LABELS_BYTES >> 20} MB)")
        text = p.read_text(encoding="utf-8")
    except FileError:
        raise
    except UnicodeDecodeError:
        raise FileError(p, "not a text file (not UTF-8): a labels file is one class name per line, or JSON") from None
    except OSError as exc:
        raise FileError(p, f"cannot read labels file: {exc.strerror or exc}") from None
    if "\x00" in text:
        raise FileError(p, "a binary file, not a labels file (it contains NUL bytes)")
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except RecursionError:
            raise FileError(p, "not valid JSON: nested too deeply") from None
        except json.JSONDecodeError as exc:
            raise FileError(p, f"not valid JSON: {exc}") from None
        if isinstance(data, dict):
            try:
                keys = sorted(data, key=lambda k: int(k))
            except ValueError:
                raise FileError(p, "a JSON labels mapping must have integer keys") from None
            if [int(k) for k in keys] != list(range(len(keys))):
                raise FileError(p, "a JSON labels mapping must have the keys 0, 1, ..., K-1 (each once)")
            labels = [data[k] for k in keys]
        elif isinstance(data, list):
            labels = data
        else:
            raise FileError(p, "JSON labels must be a list of names or an {index: name} mapping")
        if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in labels):
            raise FileError(p, "JSON labels must be names (strings), not nested lists or objects")
        labels = [str(x) for x in labels]
    else:
        labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise FileError(p, "the labels file is empty")
    long = next((i for i, x in enumerate(labels) if len(x) > MAX_LABEL_CHARS), None)
    if long is not None:
        raise FileError(p, f"label {long} is {len(labels[long])} characters long; a class name is one short line")
    return labels
