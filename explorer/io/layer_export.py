"""The session's layers as files: one float32 ``.npy`` per layer at the image's resolution, then
``layers.json``, the index that names each file with its layer, run and explanation records."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from explorer.core.jsonable import to_json
from explorer.io.safe_files import atomic_write, output_dir, write_text


def export_layers(session, folder: str | Path) -> Iterator[str]:
    """Write every layer that has data into ``folder``, yielding each file's name once it is whole.

    Raises ``ExplorerError`` for a folder that cannot be used (named before anything is written) and
    ``OSError`` for a write that fails; files yielded until then stay. The index comes last: it vouches
    for the files."""
    out = output_dir(folder)
    index = []
    for layer in session.layers:
        m = session.layer_data(layer)
        if m is None:
            continue
        run = session.runs[layer.run_id]
        name = f"run{run.id}_{run.method}_{layer.name}.npy"
        with atomic_write(out / name) as f:
            np.save(f, np.asarray(m, dtype=np.float32))
        index.append({"file": name, "layer": layer.record(), "run": run.record(),
                      "explanation": run.explanation.record()})
        yield name
    write_text(out / "layers.json", to_json(index))
