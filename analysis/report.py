"""The study report: `report.html` (self-contained) and `report.md`, rendered from typed results.

Input is one `StudyReport` (plain frozen dataclasses, built by the study runner); nothing here
trains, generates or reads run folders. `write_report(report, out_dir)` draws the plots as PNG files
under `out_dir/plots/`, writes `report.md` (linking those files) and `report.html` (the same PNGs
embedded as base64 data URIs, every text HTML-escaped, no external resources), and returns the paths.

Sections, in order:

1. Table 1 as in the paper: Macro-F1 and accuracy per task x training data (real, zero-shot,
   few-shot, small real + few-shot), one table per backbone, tasks ordered from most objective to
   most subjective when a crowd ranking exists.
2. Task subjectivity: the crowd's Bradley–Terry ranking with 95% intervals and its plot, or — when
   no crowd judgments were given — a box saying that subjectivity is not measured and exactly how to
   collect real judgments (the report never invents them). LLM judgments (`subjlab judge`), when
   given, are shown as such, with Kendall τ against the crowd ranking when both exist.
3. Gap vs subjectivity: the real − synthetic gap per task against the crowd score, Spearman and
   Kendall correlations, and the scatter plot.
4. Accuracy vs agreement threshold γ (real vs synthetic training data) where per-instance
   agreement exists.
5. Diversity (Remote Clique, Chamfer; cosine distance on all-MiniLM-L6-v2 embeddings) and top-5
   similarity of each training set to the real one.
6. Provenance: models, backends, seeds, package versions, wall time per step.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from analysis.correlation import CorrelationResult
from analysis.evaluation import GammaScore
from analysis.ranking import RankedTask

#: Report column order and headers of the training-data conditions.
CONDITION_TITLES: dict[str, str] = {
    "real": "real",
    "zero_shot": "zero-shot",
    "few_shot": "few-shot",
    "small_real_few_shot": "small real + few-shot",
}


@dataclass(frozen=True)
class TaskInfo:
    """A task of the study: key, title, labels, and the real data sizes used."""

    name: str
    title: str
    labels: tuple[str, ...]
    n_train_real: int
    n_test: int


@dataclass(frozen=True)
class PerformanceCell:
    """One model family's scores on a task's real test split (mean over `n_seeds` seeds)."""

    task: str
    condition: str
    backbone: str
    accuracy: float
    macro_f1: float
    train_size: int
    eval_size: int
    n_seeds: int = 1


@dataclass(frozen=True)
class DiversityRow:
    """Diversity of one training set (cosine distance) and its top-5 similarity to the real set."""

    task: str
    condition: str
    n: int
    remote_clique: float
    chamfer: float
    similarity_top5: float | None


@dataclass(frozen=True)
class GammaCurve:
    """Stratified scores of one model family on one task, one point per γ."""

    task: str
    condition: str
    backbone: str
    scores: tuple[GammaScore, ...]
    agreement_source: str = ""


@dataclass(frozen=True)
class Ranking:
    """A ranking fitted from one judgments file; `source` says whose judgments (crowd or llm:<model>)."""

    source: str
    path: str
    n_judgments: int
    tasks: tuple[RankedTask, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class GapCorrelation:
    """Correlation of crowd objectivity with one real − synthetic gap (e.g. Macro-F1, zero-shot)."""

    label: str
    backbone: str
    metric: str
    synthetic: str
    result: CorrelationResult


@dataclass(frozen=True)
class RankingComparison:
    """Kendall τ between an LLM's ranking and the crowd's over their common tasks."""

    llm_source: str
    n_tasks: int
    kendall_tau: float
    kendall_p: float


@dataclass(frozen=True)
class StepTiming:
    """One step of the run: its name, whether it ran or came from the cache, its wall time and the
    CPU time of the run's process meanwhile (for a cached step, the times of the run that made it;
    0.0 CPU for steps logged before CPU time was recorded)."""

    name: str
    status: str
    seconds: float
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class Provenance:
    """Where the numbers come from: config, models, backends, seeds, versions, timings."""

    study: str
    config_path: str
    started_at: str
    wall_seconds: float
    generation_backend: str
    generation_model: str
    backbones: tuple[str, ...]
    seeds: tuple[int, ...]
    data_dir: str
    packages: dict[str, str]
    steps: tuple[StepTiming, ...]
    platform: str = ""


@dataclass(frozen=True)
class StudyReport:
    """Everything the report shows. Optional parts (crowd ranking, LLM ranking, curves) may be empty."""

    title: str
    tasks: tuple[TaskInfo, ...]
    conditions: tuple[str, ...]
    backbones: tuple[str, ...]
    performance: tuple[PerformanceCell, ...]
    diversity: tuple[DiversityRow, ...]
    curves: tuple[GammaCurve, ...]
    provenance: Provenance
    crowd: Ranking | None = None
    llm: tuple[Ranking, ...] = ()
    correlations: tuple[GapCorrelation, ...] = ()
    comparisons: tuple[RankingComparison, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by `write_report`."""

    html: Path
    markdown: Path
    plots: dict[str, Path] = field(default_factory=dict)


#: How to collect crowd judgments; shown when a study has none. Kept as data so both formats agree.
COLLECT_STEPS: tuple[tuple[str, str], ...] = (
    (
        "Create a pairwise study over the study's tasks in the annotation database (SQLite by default; "
        "PostgreSQL with --db or $SUBJLAB_DATABASE_URL):",
        "subjlab db upgrade\nsubjlab study create objectivity --kind pairwise\nsubjlab study add objectivity {task_options}",
    ),
    (
        "Run the annotation server and send workers to http://HOST:PORT/study/objectivity "
        "(or publish the study on Mechanical Turk with `subjlab mturk publish`):",
        "subjlab serve",
    ),
    (
        "Watch it fill (the paper used about 540 judgments for 10 tasks), then export and rank:",
        "subjlab study progress objectivity\nsubjlab study export objectivity -o judgments.jsonl\n"
        "subjlab rank judgments.jsonl",
    ),
    (
        "Re-run the study with the judgments (finished steps are reused), from the file or straight from the database:",
        "{rerun} --judgments judgments.jsonl\n{rerun} --judgments-study objectivity",
    ),
)


def table_rows(report: StudyReport, backbone: str, metric: str) -> list[list[str]]:
    """Return Table 1 rows for one backbone and metric ("macro_f1" or "accuracy") as formatted text:
    [task, objectivity rank or "-", one cell per condition] (cells "-" where a condition did not run)."""
    cells = {(c.task, c.condition): c for c in report.performance if c.backbone == backbone}
    ranks = {t.task: t.rank for t in report.crowd.tasks} if report.crowd else {}
    rows = []
    for task in _task_order(report):
        row = [task.name, str(ranks[task.name]) if task.name in ranks else "-"]
        for cond in report.conditions:
            cell = cells.get((task.name, cond))
            row.append(f"{getattr(cell, metric) * 100:.1f}" if cell else "-")
        rows.append(row)
    return rows


def headline_markdown(report: StudyReport) -> str:
    """Return Table 1 (Macro-F1 and accuracy, every backbone) as Markdown text, for a terminal."""
    out = []
    for backbone in report.backbones:
        for metric, title in (("macro_f1", "Macro-F1"), ("accuracy", "Accuracy")):
            out.append(f"{title} (%), backbone {backbone}, real test split:\n")
            out.append(_md_table(table_header(report), table_rows(report, backbone, metric)))
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def write_report(report: StudyReport, out_dir: str | Path, rerun_command: str = "subjlab run CONFIG.toml") -> ReportFiles:
    """Draw the plots, write `report.md` and `report.html` into `out_dir`; return their paths.

    `rerun_command` is shown in the how-to-collect-judgments box (e.g. "subjlab demo").
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = draw_plots(report, out_dir / "plots")
    md_path = out_dir / "report.md"
    html_path = out_dir / "report.html"
    _atomic_text(md_path, render_markdown(report, plots, out_dir, rerun_command))
    _atomic_text(html_path, render_html(report, plots, rerun_command))
    return ReportFiles(html=html_path, markdown=md_path, plots=plots)


def draw_plots(report: StudyReport, plots_dir: Path) -> dict[str, Path]:
    """Draw every plot the report has data for into `plots_dir`; return plot id -> PNG path.

    Ids: "ranking" (crowd), "ranking-<llm source>", "gap-<i>" per correlation, "gamma-<task>-<backbone>".
    """
    from analysis.plots import plot_gamma_curves, plot_gap_vs_subjectivity, plot_ranking

    plots: dict[str, Path] = {}
    rankings = ([("ranking", report.crowd)] if report.crowd else []) + [
        (f"ranking-{_slug(r.source)}", r) for r in report.llm
    ]
    for pid, ranking in rankings:
        plots[pid] = plot_ranking(
            list(ranking.tasks),
            plots_dir / f"{pid}.png",
            title=f"Task objectivity ({ranking.source}, {ranking.n_judgments} judgments)",
        )
    for i, corr in enumerate(report.correlations):
        plots[f"gap-{i}"] = plot_gap_vs_subjectivity(corr.result, plots_dir / f"gap-{i}.png", metric=corr.label)
    for task in sorted({c.task for c in report.curves}):
        for backbone in report.backbones:
            curves = {
                CONDITION_TITLES.get(c.condition, c.condition): list(c.scores)
                for c in report.curves
                if c.task == task and c.backbone == backbone
            }
            if curves and any(s.n > 0 for ss in curves.values() for s in ss):
                pid = f"gamma-{_slug(task)}-{_slug(backbone)}"
                plots[pid] = plot_gamma_curves(
                    curves, plots_dir / f"{pid}.png", title=f"{task}: scores by agreement threshold γ ({backbone})"
                )
    return plots


# ----------------------------------------------------------------------------------------------
# Markdown


def render_markdown(report: StudyReport, plots: dict[str, Path], base: Path, rerun_command: str) -> str:
    """Return the report as Markdown; plots are linked relative to `base` (the report's folder)."""

    def img(pid: str, alt: str) -> str:
        path = plots.get(pid)
        return f"![{alt}]({path.relative_to(base).as_posix()})\n" if path else ""

    p = report.provenance
    out = [f"# {report.title}", ""]
    out.append(
        f"Study `{p.study}` from `{p.config_path}`; tasks: {', '.join(t.name for t in report.tasks)}; "
        f"{_timing_text(p)}."
    )
    out.append("")
    for note in report.notes:
        out.append(f"> {note}")
        out.append("")
    out.append("## Table 1: real vs synthetic training data")
    out.append("")
    out.append(
        "Scores (%) on each task's real test split. Columns are the training data; "
        "`obj. rank` is the crowd objectivity rank (1 = most objective) when judgments were given."
    )
    out.append("")
    out.append(headline_markdown(report))
    out.append("## Task subjectivity")
    out.append("")
    if report.crowd is None:
        out.append(_no_judgments_markdown(report, rerun_command))
    else:
        out.append(_ranking_markdown(report.crowd))
        out.append(img("ranking", "crowd objectivity ranking"))
    for r in report.llm:
        out.append(f"### LLM judgments ({r.source}) — not crowd data")
        out.append("")
        out.append(_ranking_markdown(r))
        out.append(img(f"ranking-{_slug(r.source)}", f"{r.source} objectivity ranking"))
    for comp in report.comparisons:
        out.append(
            f"Kendall τ between the {comp.llm_source} ranking and the crowd ranking: "
            f"**{comp.kendall_tau:.3f}** (p = {comp.kendall_p:.3g}, {comp.n_tasks} common tasks)."
        )
        out.append("")
    out.append("## Gap vs subjectivity")
    out.append("")
    if not report.correlations:
        out.append(_no_correlation_text(report))
        out.append("")
    for i, corr in enumerate(report.correlations):
        r = corr.result
        out.append(f"### {corr.label}")
        out.append("")
        out.append(
            f"Spearman ρ = {r.spearman_rho:.3f} (p = {r.spearman_p:.3g}), Kendall τ = {r.kendall_tau:.3f} "
            f"(p = {r.kendall_p:.3g}), n = {r.n} tasks. Scores are objectivity (higher = more objective): "
            f"the paper's finding predicts a {r.expected_sign} correlation."
        )
        out.append("")
        out.append(_md_table(["task", "objectivity score", "gap"], [[t, f"{s:.3f}", f"{g * 100:.1f}"] for t, s, g in zip(r.tasks, r.scores, r.gaps)]))
        out.append(img(f"gap-{i}", corr.label))
    out.append("## Accuracy vs agreement threshold γ")
    out.append("")
    if not report.curves:
        out.append("No task of this study has per-instance agreement (Financial PhraseBank has it built in; "
                   "other tasks need an agreement or crowd-labels file under `[evaluation]`).")
        out.append("")
    for task in sorted({c.task for c in report.curves}):
        for backbone in report.backbones:
            curves = [c for c in report.curves if c.task == task and c.backbone == backbone]
            if not curves:
                continue
            out.append(f"### {task} ({backbone})")
            out.append("")
            src = curves[0].agreement_source
            if src:
                out.append(f"Agreement: {src}.")
                out.append("")
            header, rows = _gamma_rows(curves)
            out.append(_md_table(header, rows))
            out.append(img(f"gamma-{_slug(task)}-{_slug(backbone)}", f"{task} accuracy vs gamma"))
    out.append("## Diversity and similarity of the training data")
    out.append("")
    if report.diversity:
        out.append(_DIVERSITY_NOTE)
        out.append("")
        out.append(_md_table(_DIVERSITY_HEADER, _diversity_rows(report)))
    else:
        out.append("Not computed (evaluation.diversity = false).")
        out.append("")
    out.append("## Provenance")
    out.append("")
    out.append(_md_table(["", ""], _provenance_rows(p)))
    out.append("### Steps")
    out.append("")
    out.append(_md_table(["step", "status", "seconds", "CPU seconds"], _step_rows(p)))
    return "\n".join(out).rstrip() + "\n"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(v: str) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _ranking_markdown(r: Ranking) -> str:
    lines = [
        f"Bradley–Terry objectivity scores from {r.n_judgments} judgments (`{r.path}`, {r.source}); "
        "higher = more objective; 95% bootstrap intervals.",
        "",
    ]
    for w in r.warnings:
        lines += [f"> warning: {w}", ""]
    lines.append(_md_table(["rank", "task", "score", "95% interval", "comparisons"], _ranking_rows(r)))
    return "\n".join(lines)


def _no_judgments_markdown(report: StudyReport, rerun_command: str) -> str:
    lines = [
        "> **Task subjectivity is not measured in this run.** The ranking of tasks by subjectivity, and",
        "> its correlation with the real − synthetic gap, need real crowd judgments of which of two tasks",
        "> is more objective. subjlab never invents crowd data. To collect them:",
        ">",
    ]
    for i, (text, cmd) in enumerate(COLLECT_STEPS, start=1):
        lines.append(f"> {i}. {text}")
        for c in _fill(cmd, report, rerun_command).splitlines():
            lines.append(f">    `{c}`")
    lines.append(">")
    lines.append("> A cheap, clearly-labelled proxy: `subjlab judge --tasks "
                 f"{','.join(t.name for t in report.tasks)} --backend local --out llm_judgments.jsonl` "
                 "(LLM judgments, shown separately from crowd data).")
    return "\n".join(lines) + "\n"


def _no_correlation_text(report: StudyReport) -> str:
    if report.crowd is None:
        return "Not computed: needs the crowd subjectivity ranking (see above)."
    return ("Not computed: needs at least 3 tasks with both a crowd score and a real and a synthetic "
            "model (see the notes above).")


# ----------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.box{border:2px solid #c77;background:#fff6f3;padding:.8em 1.2em;border-radius:6px}
.note{border-left:4px solid #88a;background:#f5f6fb;padding:.4em .9em}
pre{background:#f4f4f4;padding:.5em .8em;overflow-x:auto}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
.muted{color:#666;font-size:.9em}
"""


def render_html(report: StudyReport, plots: dict[str, Path], rerun_command: str) -> str:
    """Return the report as one self-contained HTML page (plots embedded as PNG data URIs)."""
    e = _esc
    p = report.provenance

    def img(pid: str, alt: str) -> str:
        path = plots.get(pid)
        if not path:
            return ""
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        return f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">'

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        f'<p class="muted">Study <code>{e(p.study)}</code> from <code>{e(p.config_path)}</code>; tasks: '
        f"{e(', '.join(t.name for t in report.tasks))}; {e(_timing_text(p))}.</p>",
    ]
    for note in report.notes:
        parts.append(f'<p class="note">{e(note)}</p>')

    parts.append('<h2 id="table1">Table 1: real vs synthetic training data</h2>')
    parts.append("<p>Scores (%) on each task's real test split. Columns are the training data; "
                 "<em>obj. rank</em> is the crowd objectivity rank (1 = most objective) when judgments were given.</p>")
    for backbone in report.backbones:
        for metric, title in (("macro_f1", "Macro-F1"), ("accuracy", "Accuracy")):
            parts.append(f"<h3>{e(title)} (%), backbone {e(backbone)}</h3>")
            parts.append(_html_table(table_header(report), table_rows(report, backbone, metric)))

    parts.append('<h2 id="subjectivity">Task subjectivity</h2>')
    if report.crowd is None:
        parts.append(_no_judgments_html(report, rerun_command))
    else:
        parts.append(_ranking_html(report.crowd))
        parts.append(img("ranking", "crowd objectivity ranking"))
    for r in report.llm:
        parts.append(f"<h3>LLM judgments ({e(r.source)}) — not crowd data</h3>")
        parts.append(_ranking_html(r))
        parts.append(img(f"ranking-{_slug(r.source)}", f"{r.source} objectivity ranking"))
    for comp in report.comparisons:
        parts.append(
            f"<p>Kendall τ between the {e(comp.llm_source)} ranking and the crowd ranking: "
            f"<strong>{comp.kendall_tau:.3f}</strong> (p = {comp.kendall_p:.3g}, {comp.n_tasks} common tasks).</p>"
        )

    parts.append('<h2 id="gap">Gap vs subjectivity</h2>')
    if not report.correlations:
        parts.append(f"<p>{e(_no_correlation_text(report))}</p>")
    for i, corr in enumerate(report.correlations):
        r = corr.result
        parts.append(f"<h3>{e(corr.label)}</h3>")
        parts.append(
            f"<p>Spearman ρ = {r.spearman_rho:.3f} (p = {r.spearman_p:.3g}), Kendall τ = {r.kendall_tau:.3f} "
            f"(p = {r.kendall_p:.3g}), n = {r.n} tasks. Scores are objectivity (higher = more objective): "
            f"the paper's finding predicts a {e(r.expected_sign)} correlation.</p>"
        )
        parts.append(_html_table(["task", "objectivity score", "gap"],
                                 [[t, f"{s:.3f}", f"{g * 100:.1f}"] for t, s, g in zip(r.tasks, r.scores, r.gaps)]))
        parts.append(img(f"gap-{i}", corr.label))

    parts.append('<h2 id="gamma">Accuracy vs agreement threshold γ</h2>')
    if not report.curves:
        parts.append("<p>No task of this study has per-instance agreement (Financial PhraseBank has it built in; "
                     "other tasks need an agreement or crowd-labels file under <code>[evaluation]</code>).</p>")
    for task in sorted({c.task for c in report.curves}):
        for backbone in report.backbones:
            curves = [c for c in report.curves if c.task == task and c.backbone == backbone]
            if not curves:
                continue
            parts.append(f"<h3>{e(task)} ({e(backbone)})</h3>")
            if curves[0].agreement_source:
                parts.append(f"<p>Agreement: {e(curves[0].agreement_source)}.</p>")
            header, rows = _gamma_rows(curves)
            parts.append(_html_table(header, rows))
            parts.append(img(f"gamma-{_slug(task)}-{_slug(backbone)}", f"{task} accuracy vs gamma"))

    parts.append('<h2 id="diversity">Diversity and similarity of the training data</h2>')
    if report.diversity:
        parts.append(f"<p>{e(_DIVERSITY_NOTE)}</p>")
        parts.append(_html_table(_DIVERSITY_HEADER, _diversity_rows(report)))
    else:
        parts.append("<p>Not computed (evaluation.diversity = false).</p>")

    parts.append('<h2 id="provenance">Provenance</h2>')
    parts.append(_html_table(["", ""], _provenance_rows(p)))
    parts.append("<h3>Steps</h3>")
    parts.append(_html_table(["step", "status", "seconds", "CPU seconds"], _step_rows(p)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ranking_html(r: Ranking) -> str:
    parts = [
        f"<p>Bradley–Terry objectivity scores from {r.n_judgments} judgments (<code>{_esc(r.path)}</code>, "
        f"{_esc(r.source)}); higher = more objective; 95% bootstrap intervals.</p>"
    ]
    for w in r.warnings:
        parts.append(f'<p class="note">warning: {_esc(w)}</p>')
    parts.append(_html_table(["rank", "task", "score", "95% interval", "comparisons"], _ranking_rows(r)))
    return "\n".join(parts)


def _no_judgments_html(report: StudyReport, rerun_command: str) -> str:
    items = "".join(
        f"<li>{_code_spans(text)}<pre>{_esc(_fill(cmd, report, rerun_command))}</pre></li>" for text, cmd in COLLECT_STEPS
    )
    tasks = ",".join(t.name for t in report.tasks)
    return (
        '<div class="box" id="no-judgments"><p><strong>Task subjectivity is not measured in this run.</strong> '
        "The ranking of tasks by subjectivity, and its correlation with the real − synthetic gap, need real "
        "crowd judgments of which of two tasks is more objective. subjlab never invents crowd data. "
        f"To collect them:</p><ol>{items}</ol>"
        "<p>A cheap, clearly-labelled proxy: <code>"
        f"{_esc(f'subjlab judge --tasks {tasks} --backend local --out llm_judgments.jsonl')}</code> "
        "(LLM judgments, shown separately from crowd data).</p></div>"
    )


# ----------------------------------------------------------------------------------------------
# Shared pieces

_DIVERSITY_HEADER = ["task", "training data", "n", "Remote Clique", "Chamfer", "top-5 similarity to real"]
_DIVERSITY_NOTE = (
    "Remote Clique = mean distance of each text to all others; Chamfer = mean distance to the nearest "
    "other text (cosine distance on all-MiniLM-L6-v2 embeddings; higher = more diverse). Top-5 similarity "
    "= for each real text, the mean cosine similarity to its 5 most similar texts of the set, averaged."
)


def table_header(report: StudyReport) -> list[str]:
    """Return Table 1's header: task, objectivity rank, one column per condition."""
    return ["task", "obj. rank"] + [CONDITION_TITLES.get(c, c) for c in report.conditions]


def _task_order(report: StudyReport) -> list[TaskInfo]:
    if report.crowd is None:
        return list(report.tasks)
    rank = {t.task: t.rank for t in report.crowd.tasks}
    return sorted(report.tasks, key=lambda t: (rank.get(t.name, 10**6), t.name))


def _ranking_rows(r: Ranking) -> list[list[str]]:
    return [
        [str(t.rank), t.task, f"{t.score:.3f}",
         "-" if t.ci_low is None or t.ci_high is None else f"[{t.ci_low:.3f}, {t.ci_high:.3f}]", str(t.n)]
        for t in sorted(r.tasks, key=lambda t: t.rank)
    ]


def _gamma_rows(curves: Sequence[GammaCurve]) -> tuple[list[str], list[list[str]]]:
    gammas = sorted({s.gamma for c in curves for s in c.scores})
    header = ["γ", "n"] + [f"{CONDITION_TITLES.get(c.condition, c.condition)} acc." for c in curves]
    rows = []
    for g in gammas:
        pts = [next((s for s in c.scores if s.gamma == g), None) for c in curves]
        n = next((s.n for s in pts if s is not None), 0)
        rows.append([f"{g:g}", str(n)] + ["-" if s is None or s.accuracy is None else f"{s.accuracy * 100:.1f}" for s in pts])
    return header, rows


def _diversity_rows(report: StudyReport) -> list[list[str]]:
    order = {c: i for i, c in enumerate(report.conditions)}
    rows = sorted(report.diversity, key=lambda d: ([t.name for t in report.tasks].index(d.task)
                                                    if d.task in [t.name for t in report.tasks] else 10**6,
                                                    order.get(d.condition, 99)))
    return [
        [d.task, CONDITION_TITLES.get(d.condition, d.condition), str(d.n), f"{d.remote_clique:.3f}",
         f"{d.chamfer:.3f}", "-" if d.similarity_top5 is None else f"{d.similarity_top5:.3f}"]
        for d in rows
    ]


def _provenance_rows(p: Provenance) -> list[list[str]]:
    rows = [
        ["study", p.study],
        ["config", p.config_path],
        ["started", p.started_at],
        ["wall time (this run)", _duration(p.wall_seconds)],
        ["time of all steps when they ran", _duration(sum(s.seconds for s in p.steps))],
        ["CPU time of all steps when they ran", _duration(sum(s.cpu_seconds for s in p.steps))],
        ["generation", f"{p.generation_model} (backend {p.generation_backend})"],
        ["classifier backbones", ", ".join(p.backbones)],
        ["seeds", ", ".join(str(s) for s in p.seeds)],
        ["data", p.data_dir],
    ]
    if p.platform:
        rows.append(["platform", p.platform])
    rows += [[f"package {name}", version] for name, version in sorted(p.packages.items())]
    return rows


def _step_rows(p: Provenance) -> list[list[str]]:
    rows = [[s.name, s.status, f"{s.seconds:.1f}", f"{s.cpu_seconds:.1f}"] for s in p.steps]
    ran = [s for s in p.steps if s.status == "ran"]
    rows.append(["(steps that ran in this run)", "", f"{sum(s.seconds for s in ran):.1f}",
                 f"{sum(s.cpu_seconds for s in ran):.1f}"])
    rows.append(["(all steps, when they ran)", "", f"{sum(s.seconds for s in p.steps):.1f}",
                 f"{sum(s.cpu_seconds for s in p.steps):.1f}"])
    return rows


def _fill(cmd: str, report: StudyReport, rerun_command: str) -> str:
    return cmd.format(tasks=",".join(t.name for t in report.tasks), rerun=rerun_command,
                      task_options=" ".join(f"--task {t.name}" for t in report.tasks))


def _timing_text(p: Provenance) -> str:
    """Return "wall time X" and, when steps came from the cache, the time they took when they ran."""
    ran = sum(s.seconds for s in p.steps if s.status == "ran")
    total = sum(s.seconds for s in p.steps)
    if ran == total:
        return f"wall time {_duration(p.wall_seconds)}"
    return (f"wall time of this run {_duration(p.wall_seconds)} (cached steps reused; all steps took "
            f"{_duration(total)} when they ran)")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower() or "x"


def _code_spans(text: str) -> str:
    """Escape `text` for HTML and turn its `backticked` spans into <code> elements."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _atomic_text(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
