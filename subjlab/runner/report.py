"""The study report: `report.html` (self-contained) and `report.md` from Jinja2 templates over one
report data model (`subjlab.runner.report_model.StudyReport`).

`write_report(report, out_dir)` draws the plots as PNG files under `out_dir/plots/`, builds ONE view
of the report (`report_view`: every number already formatted, every table as header + rows) and
renders it twice: `templates/report.md.j2` (plots linked) and `templates/report.html.j2` (plots
embedded as base64 data URIs, no external resources). Everything shown is escaped: HTML by Jinja2's
autoescape, Markdown by a finalize hook (`md_escape`: `<` as an entity, `|` escaped, newlines
folded) that only text marked `MdSafe` (code spans built here) skips.

Sections, in order: Table 1 (Macro-F1 and accuracy per task x training data, each with its 95%
interval and n) and the real − synthetic gaps with paired intervals; Findings (the paper's findings,
one line each, judged by the intervals: `subjlab.runner.findings`); task subjectivity (the crowd's
Bradley–Terry ranking, or how to collect judgments, and LLM judgments shown as such); gap vs
subjectivity; accuracy vs agreement threshold γ with bands; diversity and similarity; provenance.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from subjlab.atomic import write_text_atomic
from subjlab.runner.findings import CLAIMS, points
from subjlab.runner.report_model import (
    CONDITION_TITLES,
    GammaCurve,
    Interval,
    Provenance,
    Ranking,
    ReportFiles,
    StudyReport,
    TaskInfo,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: How to collect crowd judgments; shown when a study has none (the same steps in both formats).
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
DIVERSITY_HEADER = ["task", "training data", "n", "Remote Clique", "Chamfer", "top-5 similarity to real"]
DIVERSITY_NOTE = (
    "Remote Clique = mean distance of each text to all others; Chamfer = mean distance to the nearest "
    "other text (cosine distance on all-MiniLM-L6-v2 embeddings; higher = more diverse). Top-5 similarity "
    "= for each real text, the mean cosine similarity to its 5 most similar texts of the set, averaged. "
    "Intervals: bootstrap over the texts' own values (each text's mean distance; each real text's top-5 "
    "similarity). Chamfer depends on the set's size, so sets of different sizes are compared by Remote Clique."
)


def write_report(report: StudyReport, out_dir: str | Path, rerun_command: str = "subjlab run CONFIG.toml") -> ReportFiles:
    """Draw the plots, write `report.md` and `report.html` into `out_dir`; return their paths.

    `rerun_command` is shown in the how-to-collect-judgments box (e.g. "subjlab demo").
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = draw_plots(report, out_dir / "plots")
    view = report_view(report, rerun_command)
    md_images = {pid: path.relative_to(out_dir).as_posix() for pid, path in plots.items()}
    html_images = {pid: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
                   for pid, path in plots.items()}
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_text_atomic(md_path, _environment("md").get_template("report.md.j2").render(v=view, images=md_images))
    write_text_atomic(html_path, _environment("html").get_template("report.html.j2").render(v=view, images=html_images))
    return ReportFiles(html=html_path, markdown=md_path, plots=plots)


def headline_markdown(report: StudyReport) -> str:
    """Return Table 1 (Macro-F1 and accuracy, every backbone, with intervals) as Markdown, for a terminal."""
    text = _environment("md").get_template("headline.md.j2").render(v={"table1": table_one(report)})
    return text.rstrip() + "\n"


def draw_plots(report: StudyReport, plots_dir: Path) -> dict[str, Path]:
    """Draw every plot the report has data for into `plots_dir`; return plot id -> PNG path.

    Ids: "ranking" (crowd), "ranking-<llm source>", "gap-<i>" per correlation, "gamma-<task>-<backbone>"
    (accuracy and Macro-F1 by γ with 95% bands).
    """
    from analysis.plots import plot_gamma_curves, plot_gap_vs_subjectivity, plot_ranking

    plots: dict[str, Path] = {}
    rankings = ([("ranking", report.crowd)] if report.crowd else []) + [
        (f"ranking-{plot_id(r.source)}", r) for r in report.llm
    ]
    for pid, ranking in rankings:
        plots[pid] = plot_ranking(list(ranking.tasks), plots_dir / f"{pid}.png",
                                  title=f"Task objectivity ({ranking.source}, {ranking.n_judgments} judgments)")
    for i, corr in enumerate(report.correlations):
        plots[f"gap-{i}"] = plot_gap_vs_subjectivity(corr.result, plots_dir / f"gap-{i}.png", metric=corr.label)
    for task, backbone, curves in _curve_groups(report):
        named = {CONDITION_TITLES.get(c.condition, c.condition): list(c.scores) for c in curves}
        if any(s.n > 0 for ss in named.values() for s in ss):
            bands = {CONDITION_TITLES.get(c.condition, c.condition): _band_points(c) for c in curves if c.bands}
            pid = f"gamma-{plot_id(task)}-{plot_id(backbone)}"
            plots[pid] = plot_gamma_curves(named, plots_dir / f"{pid}.png", bands=bands or None,
                                           title=f"{task}: scores by agreement threshold γ ({backbone}; 95% bands)")
    return plots


def _band_points(curve: GammaCurve) -> list[tuple[float, tuple[float, float] | None, tuple[float, float] | None]]:
    def pair(iv: Interval | None) -> tuple[float, float] | None:
        return None if iv is None else (iv.low, iv.high)

    return [(b.gamma, pair(b.accuracy), pair(b.macro_f1)) for b in curve.bands]


# ----------------------------------------------------------------------------------------------
# The one view both templates render


def report_view(report: StudyReport, rerun_command: str) -> dict[str, Any]:
    """Return the report as one dict of formatted text and tables (header + rows of strings)."""
    p = report.provenance
    tasks_text = ", ".join(t.name for t in report.tasks)
    return {
        "title": report.title,
        "study": p.study,
        "config_path": p.config_path,
        "tasks": tasks_text,
        "timing": timing_text(p),
        "notes": list(report.notes),
        "table1": table_one(report),
        "seeds": len(p.seeds),
        "synthetic": any(c != "real" for c in report.conditions),
        "set_per_seed": p.synthetic_sets > 1,
        "intervals": report.intervals,
        "gaps": gap_tables(report),
        "findings": [[f.claim, f.scope, f.verdict, f.evidence] for f in _ordered_findings(report)],
        "verdict_counts": {v: sum(f.verdict == v for f in report.findings)
                           for v in ("supported", "contradicted", "undetermined")},
        "crowd": _ranking_view(report.crowd) if report.crowd else None,
        "collect": [(text, fill(cmd, report, rerun_command).splitlines()) for text, cmd in COLLECT_STEPS],
        "judge_command": f"subjlab judge --tasks {','.join(t.name for t in report.tasks)} --backend local "
                         "--out llm_judgments.jsonl",
        "llm": [dict(_ranking_view(r), plot=f"ranking-{plot_id(r.source)}") for r in report.llm],
        "comparisons": report.comparisons,
        "correlations": [_correlation_view(report, i) for i in range(len(report.correlations))],
        "no_correlation": no_correlation_text(report),
        "gamma": [_gamma_view(task, backbone, curves) for task, backbone, curves in _curve_groups(report)],
        "diversity": diversity_rows(report),
        "diversity_header": DIVERSITY_HEADER,
        "diversity_note": DIVERSITY_NOTE + (" With one synthetic set per training seed, the synthetic rows are "
                                            f"those of the first seed's set (seed {p.seeds[0]})."
                                            if p.synthetic_sets > 1 and p.seeds else ""),
        "provenance": provenance_rows(p),
        "steps": step_rows(p),
    }


def table_header(report: StudyReport) -> list[str]:
    """Return Table 1's header: task, objectivity rank, n (test items), one column per condition."""
    return ["task", "obj. rank", "n"] + [CONDITION_TITLES.get(c, c) for c in report.conditions]


def table_rows(report: StudyReport, backbone: str, metric: str) -> list[list[str]]:
    """Return Table 1 rows for one backbone and metric ("macro_f1" or "accuracy") as formatted text:
    [task, objectivity rank or "-", n, one "score [low, high]" cell per condition] ("-" where a
    condition did not run)."""
    cells = {(c.task, c.condition): c for c in report.performance if c.backbone == backbone}
    ranks = {t.task: t.rank for t in report.crowd.tasks} if report.crowd else {}
    rows = []
    for task in task_order(report):
        here = [cells[(task.name, c)] for c in report.conditions if (task.name, c) in cells]
        n = {c.eval_size for c in here}
        row = [task.name, str(ranks[task.name]) if task.name in ranks else "-",
               "/".join(str(x) for x in sorted(n)) if n else "-"]
        for cond in report.conditions:
            cell = cells.get((task.name, cond))
            row.append(percent(getattr(cell, metric), getattr(cell, f"{metric}_interval")) if cell else "-")
        rows.append(row)
    return rows


def table_one(report: StudyReport) -> list[dict[str, Any]]:
    """Table 1: one table per backbone and metric."""
    return [{"title": f"{title} (%), backbone {backbone}", "backbone": backbone, "metric": title,
             "header": table_header(report), "rows": table_rows(report, backbone, metric)}
            for backbone in report.backbones for metric, title in (("macro_f1", "Macro-F1"), ("accuracy", "Accuracy"))]


def gap_tables(report: StudyReport) -> list[dict[str, Any]]:
    """The real − synthetic gaps (percentage points, paired bootstrap intervals): one table per
    backbone and metric, a row per task, a column per non-real condition."""
    others = [c for c in report.conditions if c != "real"]
    out = []
    for backbone in report.backbones:
        for metric, title in (("macro_f1", "Macro-F1"), ("accuracy", "Accuracy")):
            found = {(c.task, c.b): c for c in report.contrasts
                     if c.kind == "gap" and c.backbone == backbone and c.metric == metric}
            if not found:
                continue
            rows = []
            for task in task_order(report):
                here = [found[(task.name, o)] for o in others if (task.name, o) in found]
                if here:
                    rows.append([task.name, str(here[0].estimate.n)]
                                + [points(found[(task.name, o)].estimate) if (task.name, o) in found else "-" for o in others])
            out.append({"title": f"{title} gap (points), backbone {backbone}",
                        "header": ["task", "n"] + [f"real − {CONDITION_TITLES.get(o, o)}" for o in others], "rows": rows})
    return out


def _ordered_findings(report: StudyReport):
    rank = {claim: i for i, claim in enumerate(CLAIMS)}
    return sorted(report.findings, key=lambda f: rank.get(f.claim, len(rank)))


def _ranking_view(r: Ranking) -> dict[str, Any]:
    return {"source": r.source, "path": r.path, "n_judgments": r.n_judgments, "warnings": list(r.warnings),
            "header": ["rank", "task", "score", "95% interval", "comparisons"], "rows": ranking_rows(r)}


def _correlation_view(report: StudyReport, i: int) -> dict[str, Any]:
    corr = report.correlations[i]
    r = corr.result
    gaps = {c.task: c.estimate for c in report.contrasts if c.kind == "gap" and c.backbone == corr.backbone
            and c.b == corr.synthetic and c.metric == corr.metric}
    rho = ""
    if corr.spearman is not None:
        rho = f" (95% interval [{corr.spearman.low:.3f}, {corr.spearman.high:.3f}] from resampling each task's test items)"
    text = (f"Spearman ρ = {r.spearman_rho:.3f}{rho} (p = {r.spearman_p:.3g}), Kendall τ = {r.kendall_tau:.3f} "
            f"(p = {r.kendall_p:.3g}), n = {r.n} tasks. Scores are objectivity (higher = more objective): "
            f"the paper's finding predicts a {r.expected_sign} correlation.")
    rows = [[t, f"{s:.3f}", points(gaps[t]) if t in gaps else f"{g * 100:.1f}"] for t, s, g in zip(r.tasks, r.scores, r.gaps)]
    return {"label": corr.label, "text": text, "header": ["task", "objectivity score", "gap (points)"], "rows": rows,
            "plot": f"gap-{i}"}


def _curve_groups(report: StudyReport) -> list[tuple[str, str, list[GammaCurve]]]:
    out = []
    for task in sorted({c.task for c in report.curves}):
        for backbone in report.backbones:
            curves = [c for c in report.curves if c.task == task and c.backbone == backbone]
            if curves:
                out.append((task, backbone, curves))
    return out


def _gamma_view(task: str, backbone: str, curves: Sequence[GammaCurve]) -> dict[str, Any]:
    gammas = sorted({s.gamma for c in curves for s in c.scores})
    header = ["γ", "n"] + [f"{CONDITION_TITLES.get(c.condition, c.condition)} acc." for c in curves]
    rows = []
    for g in gammas:
        pts = [next((s for s in c.scores if s.gamma == g), None) for c in curves]
        bands = [next((b.accuracy for b in c.bands if b.gamma == g), None) for c in curves]
        n = next((s.n for s in pts if s is not None), 0)
        rows.append([f"{g:g}", str(n)] + ["-" if s is None or s.accuracy is None else percent(s.accuracy, b)
                                          for s, b in zip(pts, bands)])
    return {"title": f"{task} ({backbone})", "source": curves[0].agreement_source, "header": header, "rows": rows,
            "plot": f"gamma-{plot_id(task)}-{plot_id(backbone)}", "alt": f"{task} accuracy vs gamma"}


def percent(value: float, interval: Interval | None) -> str:
    """Format a score as '85.0 [80.1, 89.2]' (percent; no brackets without an interval)."""
    if interval is None:
        return f"{value * 100:.1f}"
    return f"{value * 100:.1f} [{interval.low * 100:.1f}, {interval.high * 100:.1f}]"


def _three(value: float | None, interval: Interval | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if interval is None else f"{value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def task_order(report: StudyReport) -> list[TaskInfo]:
    """The study's tasks, most objective first when a crowd ranking exists."""
    if report.crowd is None:
        return list(report.tasks)
    rank = {t.task: t.rank for t in report.crowd.tasks}
    return sorted(report.tasks, key=lambda t: (rank.get(t.name, 10**6), t.name))


def ranking_rows(r: Ranking) -> list[list[str]]:
    """Rows of a ranking table: rank, task, score, 95% interval, comparisons."""
    return [
        [str(t.rank), t.task, f"{t.score:.3f}",
         "-" if t.ci_low is None or t.ci_high is None else f"[{t.ci_low:.3f}, {t.ci_high:.3f}]", str(t.n)]
        for t in sorted(r.tasks, key=lambda t: t.rank)
    ]


def diversity_rows(report: StudyReport) -> list[list[str]]:
    """Rows of the diversity table, in task then condition order."""
    names = [t.name for t in report.tasks]
    order = {c: i for i, c in enumerate(report.conditions)}
    rows = sorted(report.diversity, key=lambda d: (names.index(d.task) if d.task in names else 10**6,
                                                   order.get(d.condition, 99)))
    return [[d.task, CONDITION_TITLES.get(d.condition, d.condition), str(d.n), _three(d.remote_clique, d.remote_clique_interval),
             f"{d.chamfer:.3f}", _three(d.similarity_top5, d.similarity_interval)] for d in rows]


def provenance_rows(p: Provenance) -> list[list[str]]:
    """Rows of the provenance table."""
    rows = [
        ["study", p.study],
        ["config", p.config_path],
        ["started", p.started_at],
        ["wall time (this run)", duration(p.wall_seconds)],
        ["time of all steps when they ran", duration(sum(s.seconds for s in p.steps))],
        ["CPU time of all steps when they ran", duration(sum(s.cpu_seconds for s in p.steps))],
        ["generation", f"{p.generation_model} (backend {p.generation_backend})"],
        ["classifier backbones", ", ".join(p.backbones)],
        ["seeds", ", ".join(str(s) for s in p.seeds)],
        ["data", p.data_dir],
    ]
    if p.platform:
        rows.append(["platform", p.platform])
    return rows + [[f"package {name}", version] for name, version in sorted(p.packages.items())]


def step_rows(p: Provenance) -> list[list[str]]:
    """Rows of the steps table, with the sums of the steps that ran and of all steps."""
    rows = [[s.name, s.status, f"{s.seconds:.1f}", f"{s.cpu_seconds:.1f}"] for s in p.steps]
    ran = [s for s in p.steps if s.status == "ran"]
    rows.append(["(steps that ran in this run)", "", f"{sum(s.seconds for s in ran):.1f}",
                 f"{sum(s.cpu_seconds for s in ran):.1f}"])
    rows.append(["(all steps, when they ran)", "", f"{sum(s.seconds for s in p.steps):.1f}",
                 f"{sum(s.cpu_seconds for s in p.steps):.1f}"])
    return rows


def no_correlation_text(report: StudyReport) -> str:
    """Why the gap-vs-subjectivity section is empty."""
    if report.crowd is None:
        return "Not computed: needs the crowd subjectivity ranking (see above)."
    return ("Not computed: needs at least 3 tasks with both a crowd score and a real and a synthetic "
            "model (see the notes above).")


def fill(cmd: str, report: StudyReport, rerun_command: str) -> str:
    """Fill a COLLECT_STEPS command with the study's tasks and re-run command."""
    return cmd.format(tasks=",".join(t.name for t in report.tasks), rerun=rerun_command,
                      task_options=" ".join(f"--task {t.name}" for t in report.tasks))


def timing_text(p: Provenance) -> str:
    """Return "wall time X" and, when steps came from the cache, the time they took when they ran."""
    ran = sum(s.seconds for s in p.steps if s.status == "ran")
    total = sum(s.seconds for s in p.steps)
    if ran == total:
        return f"wall time {duration(p.wall_seconds)}"
    return (f"wall time of this run {duration(p.wall_seconds)} (cached steps reused; all steps took "
            f"{duration(total)} when they ran)")


def duration(seconds: float) -> str:
    """Format seconds as "M min SS s", or "S.s s" under a minute."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{seconds:.1f} s"


def plot_id(text: str) -> str:
    """The lower-case, file-name-safe form of `text` in plot ids (plots/<id>.png)."""
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower() or "x"


# ----------------------------------------------------------------------------------------------
# Templates and escaping


class MdSafe(str):
    """Text already formatted for Markdown (a code span built here): `md_escape` leaves it alone."""


def md_escape(value: object) -> str:
    """Escape a value for Markdown text and table cells: `<` as an entity (no value can open an HTML
    tag; a lone `>` cannot, and values never start a line), `|` escaped, newlines folded."""
    if isinstance(value, MdSafe):
        return value
    text = "" if value is None else str(value)
    return text.replace("<", "&lt;").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def md_code(value: object) -> MdSafe:
    """A Markdown code span holding `value` literally (fenced with more backticks than it contains)."""
    text = str(value).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return MdSafe(f"{fence}{pad}{text}{pad}{fence}")


def md_inline(value: object) -> MdSafe:
    """Escape text for Markdown but keep its `backticked` spans as code spans."""
    parts = re.split(r"(`[^`]+`)", str(value))
    return MdSafe("".join(md_code(p[1:-1]) if p.startswith("`") and p.endswith("`") and len(p) > 1 else md_escape(p)
                          for p in parts))


def html_code_spans(value: object):
    """Escape text for HTML and turn its `backticked` spans into <code> elements."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(str(value)))))


@lru_cache(maxsize=2)
def _environment(kind: str):
    """The Jinja2 environment of one output format ("md" or "html")."""
    import jinja2

    if kind == "html":
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["code_spans"] = html_code_spans
    else:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False, finalize=md_escape,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                 keep_trailing_newline=True)
        env.filters["code"] = md_code
        env.filters["inline"] = md_inline
    env.filters["duration"] = duration
    return env
