"""PNG plots for the agreement and evaluation analyses (matplotlib, Agg canvas; no display needed).

Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas directly, so importing this module
never changes pyplot's global backend or state.

- `plot_agreement_hist`: distribution of per-item agreement a_i.
- `plot_gamma_curves`: accuracy and Macro-F1 vs the agreement threshold γ, one line per model/data.
- `plot_gap_vs_subjectivity`: per-task gap vs task score, with task names and the correlations.
- `plot_ranking`: Bradley–Terry objectivity scores with 95% intervals, most objective on top,
  optionally one task highlighted (`subjlab rank --plot`, `--new-task`; the study report).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

from analysis.correlation import CorrelationResult
from analysis.evaluation import GammaScore


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def plot_agreement_hist(agreements: Iterable[float], path: str | Path, title: str = "Annotation agreement") -> Path:
    """Draw the distribution of per-item agreement values in [0, 1] to a PNG; return its path.

    With at most 25 distinct values (the usual case: shares k/K) each value gets its own bar, else a
    20-bin histogram. ValueError when there are no values.
    """
    values = [float(v) for v in agreements]
    if not values:
        raise ValueError("no agreement values to plot")
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    distinct = sorted({round(v, 6) for v in values})
    if len(distinct) <= 25:
        counts = [sum(1 for v in values if round(v, 6) == d) for d in distinct]
        gaps = [b - a for a, b in zip(distinct, distinct[1:])]
        width = min([0.04] + [0.8 * g for g in gaps])
        ax.bar(distinct, counts, width=width, color="#4C72B0")
        for x, c in zip(distinct, counts):
            ax.annotate(str(c), (x, c), ha="center", va="bottom", fontsize=8)
    else:
        ax.hist(values, bins=20, range=(0.0, 1.0), color="#4C72B0", edgecolor="white")
    ax.set_xlim(-0.02, 1.05)
    ax.set_xlabel("agreement a_i (share of the majority label)")
    ax.set_ylabel("items")
    ax.set_title(f"{title} (n={len(values)}, mean={sum(values) / len(values):.3f})")
    return _save(fig, path)


def plot_gamma_curves(curves: Mapping[str, Sequence[GammaScore]], path: str | Path, title: str | None = None,
                      bands: Mapping[str, Sequence[tuple[float, tuple[float, float] | None, tuple[float, float] | None]]]
                      | None = None) -> Path:
    """Draw accuracy and Macro-F1 vs γ (two panels), one line per named curve, to a PNG; return its path.

    `bands` (optional, by curve name): per γ, the (low, high) interval of accuracy and of Macro-F1
    (None where there is none), drawn as a shaded band in the line's colour. Points with n = 0 (no
    instance reaches γ) are left out. ValueError when no curve has a point.
    """
    if not curves or not any(s.n > 0 for scores in curves.values() for s in scores):
        raise ValueError("no scores to plot (every curve is empty)")
    fig = _figure(10.0, 4.2)
    axes = [fig.add_subplot(1, 2, k) for k in (1, 2)]
    for name, scores in curves.items():
        pts = sorted((s for s in scores if s.n > 0), key=lambda s: s.gamma)
        gammas = [s.gamma for s in pts]
        for k, (ax, metric) in enumerate(zip(axes, ("accuracy", "macro_f1"))):
            (line,) = ax.plot(gammas, [getattr(s, metric) for s in pts], marker="o", label=name)
            band = [b for b in (bands or {}).get(name, ()) if b[1 + k] is not None]
            if band:
                band.sort(key=lambda b: b[0])
                ax.fill_between([b[0] for b in band], [b[1 + k][0] for b in band], [b[1 + k][1] for b in band],
                                color=line.get_color(), alpha=0.18, linewidth=0)
    for ax, metric in zip(axes, ("accuracy", "Macro-F1")):
        ax.set_xlabel("agreement threshold γ (instances with a_i ≥ γ)")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    n_lists = {tuple((s.gamma, s.n) for s in sorted(scores, key=lambda s: s.gamma)) for scores in curves.values()}
    if title is None:
        title = "Accuracy and Macro-F1 by agreement threshold"
        if len(n_lists) == 1:  # the same instances in every curve: show n per γ once
            title += " (n per γ: " + ", ".join(f"{g:g}:{n}" for g, n in next(iter(n_lists))) + ")"
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


#: Dot colours of `plot_ranking`: every task, and the highlighted one.
RANKING_COLOUR = "#4C72B0"
HIGHLIGHT_COLOUR = "#C44E52"


def plot_ranking(tasks: Sequence, path: str | Path, highlight: str | None = None, title: str | None = None) -> Path:
    """Draw tasks' objectivity scores with their 95% intervals (most objective on top) to a PNG; return its path.

    `tasks`: objects with `task` and `score`, and optionally `ci_low`/`ci_high` (an interval is drawn
    when both are set), `rank` (the order; else by score) and `n` (judgments, shown beside the name),
    e.g. `analysis.ranking.RankedTask` rows or the rows of `subjlab rank --format json`.
    `highlight`: the name of a task drawn in another colour (e.g. a newly placed task); ValueError
    when no task has that name, or when `tasks` is empty.
    """
    rows = list(tasks)
    if not rows:
        raise ValueError("no ranked tasks to plot: the ranking is empty")
    if highlight is not None and highlight not in {t.task for t in rows}:
        raise ValueError(f"cannot highlight {highlight!r}: not among the ranked tasks "
                         f"({', '.join(sorted(t.task for t in rows))})")
    if all(getattr(t, "rank", None) is not None for t in rows):
        ordered = sorted(rows, key=lambda t: -t.rank)  # rank 1 (most objective) last: drawn on top
    else:
        ordered = sorted(rows, key=lambda t: t.score)
    fig = _figure(7.0, 1.0 + 0.38 * len(ordered))
    ax = fig.add_subplot(1, 1, 1)
    for y, t in enumerate(ordered):
        colour = HIGHLIGHT_COLOUR if t.task == highlight else RANKING_COLOUR
        low, high = getattr(t, "ci_low", None), getattr(t, "ci_high", None)
        if low is not None and high is not None:
            ax.plot([low, high], [y, y], color=colour, linewidth=2, alpha=0.6, solid_capstyle="butt")
            ax.plot([low, high], [y, y], "|", color=colour, markersize=8, alpha=0.8)
        ax.plot([t.score], [y], "o", color=colour, markersize=7 if t.task == highlight else 6)
    ax.set_yticks(list(range(len(ordered))))
    names = [f"{t.task} (n={t.n})" if getattr(t, "n", None) is not None else t.task for t in ordered]
    ax.set_yticklabels(names)
    for label, t in zip(ax.get_yticklabels(), ordered):
        if t.task == highlight:
            label.set_color(HIGHLIGHT_COLOUR)
            label.set_fontweight("bold")
    ax.axvline(0.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlabel("objectivity score (Bradley–Terry log-strength; 95% interval)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title or "Tasks from most objective (top) to most subjective", fontsize=10)
    return _save(fig, path)


def plot_gap_vs_subjectivity(result: CorrelationResult, path: str | Path, metric: str = "gap") -> Path:
    """Scatter each task's gap against its score (named points, correlations in the title); return path."""
    fig = _figure(6.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(result.scores, result.gaps, color="#C44E52")
    for task, x, y in zip(result.tasks, result.scores, result.gaps):
        ax.annotate(task, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if result.orientation == "objectivity":
        ax.set_xlabel("task objectivity score (Bradley–Terry; higher = more objective)")
    else:
        ax.set_xlabel("task subjectivity score (higher = more subjective)")
    ax.set_ylabel(f"{metric} (real − synthetic)")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.grid(True, alpha=0.3)
    ax.set_title(
        f"Spearman ρ={result.spearman_rho:.2f} (p={result.spearman_p:.3g}), "
        f"Kendall τ={result.kendall_tau:.2f} (p={result.kendall_p:.3g}), n={result.n}",
        fontsize=9,
    )
    return _save(fig, path)
