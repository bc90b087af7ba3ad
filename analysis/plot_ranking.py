"""Plot of a task objectivity ranking with its intervals (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from analysis.ranking import RankedTask


def plot_ranking(rows: Sequence[RankedTask], path: str | Path, highlight: str | None = None, title: str | None = None) -> Path:
    """Draw the ranking as a dot plot with 95% intervals, most objective on top; write a PNG to `path`.

    `highlight`: a task drawn in another colour (e.g. a newly placed task). Returns the path written.
    Raises ValueError when `rows` is empty.
    """
    if not rows:
        raise ValueError("nothing to plot: the ranking is empty")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(rows, key=lambda r: r.rank)
    y = list(range(len(ordered)))[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(ordered)))
    for yi, row in zip(y, ordered):
        colour = "tab:red" if row.task == highlight else "tab:blue"
        if row.ci_low is not None and row.ci_high is not None:
            ax.plot([row.ci_low, row.ci_high], [yi, yi], color=colour, lw=2, alpha=0.6)
        ax.plot([row.score], [yi], "o", color=colour)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r.task} (n={r.n})" for r in ordered])
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("objectivity score (Bradley–Terry log-strength, higher = more objective)", fontsize=9)
    ax.set_title(title or "Task objectivity ranking with 95% bootstrap intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
