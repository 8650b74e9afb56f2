"""The training curve as a PNG: every step's loss, its running mean, and each epoch's mean loss terms."""

from __future__ import annotations

from pathlib import Path

from explorer.core.errors import FileError


def save_curve(path: str | Path, step_losses: list[float], history: list[dict[str, float]], title: str,
               terms: tuple[str, ...] = ("cls", "area", "tv", "mask", "nontarget")) -> Path:
    """Write the plot (matplotlib, no display needed); a FileError naming ``path`` when it cannot be written.
    ``terms``: the per-epoch entries of ``history`` drawn on the right (the in-painter's trainer passes its own)."""
    import matplotlib

    matplotlib.use("Agg")  # never a window: this runs from the command line and in tests
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax, ax2 = fig.subplots(1, 2)
    steps = list(range(1, len(step_losses) + 1))
    ax.plot(steps, step_losses, lw=0.6, alpha=0.45, label="step")
    k = max(1, len(step_losses) // 20)
    if len(step_losses) >= k > 1:
        run = [sum(step_losses[max(0, i - k + 1):i + 1]) / len(step_losses[max(0, i - k + 1):i + 1])
               for i in range(len(step_losses))]
        ax.plot(steps, run, lw=1.6, label=f"running mean ({k} steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("total loss")
    ax.legend(fontsize=8)
    epochs = list(range(1, len(history) + 1))
    for name in terms:
        if history and name in history[0]:
            ax2.plot(epochs, [h[name] for h in history], marker="o", ms=3, label=name)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("epoch mean of each term")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise FileError(path, f"cannot write the training curve: {exc.strerror or exc}") from None
    return path
