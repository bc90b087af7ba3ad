"""Admin dashboard: token login, the studies list and one page per study (mounted at `/admin`).

- `GET  /admin/`                       studies with their progress (login form when not logged in);
- `POST /admin/login`, `POST /admin/logout`   token login into the Flask session (CSRF-checked forms);
- `GET  /admin/studies/NAME`           progress, live ranking with intervals (pairwise), position bias,
  agreement distribution (labeling), worker table, export buttons, quality control (flagged workers with
  reasons, what `--exclude-flagged` leaves out);
- `GET  /admin/studies/NAME?quality=1`  the same plus worker-quality models compared with majority vote
  (labels: Dawid–Skene, MACE) or with choix's Bradley–Terry (pairs: noisy Bradley–Terry, ...): agreement
  and accuracy on gold. Fitting takes seconds, so it runs only on request and is cached per study until
  new answers arrive (`quality_view`, `ModelCache`);
- `GET  /admin/studies/NAME/ranking.png`, `/position.png`, `/agreement.png`   the figures as PNG.

The numbers come from the core's report functions (`progress.study_progress`, `reports.ranking`,
`reports.agreement`, `reports.workers`) - the same JSON as the admin API. Export buttons link to the
admin export endpoint of the JSON API, which accepts the logged-in admin session for GET requests.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from annotation_server import progress, quality_view, reports, security, studies
from annotation_server.app import get_state
from annotation_server.db import session_scope

bp = Blueprint("admin", __name__, template_folder="templates")

#: Seconds between reloads when "live" is switched on (static/admin.js reads it from data-refresh).
REFRESH_SECONDS = 10
#: Studies whose model comparison is kept in memory (per server process).
MODEL_CACHE_SIZE = 16
#: MACE restarts x iterations for the dashboard: crowd-kit's MACE costs ~40-80 ms per iteration whatever the
#: study's size (pandas overhead; no convergence test), so 2 x 25 keeps the page at a few seconds.
MACE_RESTARTS, MACE_ITERATIONS = 2, 25


@dataclass(frozen=True)
class CachedComparison:
    """A model comparison, the data it was computed on (`fingerprint`), when (UTC, app clock), and how
    long it took (seconds)."""

    fingerprint: tuple[int, int]
    comparison: quality_view.ModelComparison | None
    computed_at: str
    seconds: float


class ModelCache:
    """Per-process cache of model comparisons: study -> CachedComparison, valid while the study's
    fingerprint (answers, gold answers) is unchanged; at most `size` studies (least recently used out)."""

    def __init__(self, size: int = MODEL_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, CachedComparison] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, study: str, fingerprint: tuple[int, int]) -> CachedComparison | None:
        """Return the cached comparison of `study` if it was computed on the same data, else None."""
        with self._lock:
            entry = self._entries.get(study)
            if entry is None or entry.fingerprint != fingerprint:
                return None
            self._entries.move_to_end(study)
            return entry

    def put(self, study: str, entry: CachedComparison) -> CachedComparison:
        """Store (and return) a comparison."""
        with self._lock:
            self._entries[study] = entry
            self._entries.move_to_end(study)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return entry


def _model_cache() -> ModelCache:
    return current_app.extensions.setdefault("subjlab_admin_models", ModelCache())


@bp.context_processor
def _admin_context() -> dict[str, Any]:
    return {"logged_in": security.is_admin()}


@bp.app_template_filter("when")
def when(value: str | None) -> str:
    """Format an ISO timestamp ('2026-11-22T03:24:25.843631Z') as '2026-11-22 03:24:25'; '–' for None."""
    if not value:
        return "–"
    return str(value).replace("T", " ").split(".")[0].rstrip("Z")


@bp.after_request
def _no_store(response: Response) -> Response:
    """Dashboard pages and figures show live study data: never cache them."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _now():
    return get_state().clock()


def _login_page(error: str | None = None, status: int = 200):
    next_url = request.values.get("next", "")
    return render_template("admin/login.html", error=error, next_url=_safe_next(next_url)), status


def _safe_next(target: str) -> str:
    """Return `target` if it is a path inside /admin on this site, else the dashboard's URL."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith(bp.url_prefix or "/admin"):
        return url_for("admin.index")
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _require_admin():
    """Return a redirect to the login form when this browser is not logged in as admin, else None."""
    if security.is_admin():
        return None
    return redirect(url_for("admin.index", next=request.full_path.rstrip("?")), code=303)


@bp.get("/")
def index():
    """Studies list with progress, or the login form."""
    if not security.is_admin():
        return _login_page()
    with session_scope() as db:
        rows = studies.list_studies(db)
        now = _now()
        for row in rows:
            row["progress"] = progress.study_progress(db, row["name"], now)
    return render_template("admin/index.html", studies=rows, refresh=REFRESH_SECONDS)


@bp.post("/login")
def login():
    """Check the CSRF token and the admin token; on success remember the admin in the session."""
    security.validate_csrf()
    token = request.form.get("token", "")
    if not token:
        return _login_page("Enter the admin token.", status=400)
    if not security.admin_login(token):
        return _login_page("That token is not the admin token (SUBJLAB_ADMIN_TOKEN).", status=403)
    return redirect(_safe_next(request.form.get("next", "")), code=303)


@bp.post("/logout")
def logout():
    """Forget the admin login (CSRF-checked)."""
    security.validate_csrf()
    security.admin_logout()
    return redirect(url_for("admin.index"), code=303)


@bp.get("/studies/<name>")
def study(name: str):
    """One study: progress, ranking or agreement, position bias, workers, export buttons, quality control;
    with `?quality=1` also the worker models compared with majority vote (cached until new answers)."""
    if (resp := _require_admin()) is not None:
        return resp
    want_models = request.args.get("quality") == "1"
    models: CachedComparison | None = None
    inputs = None
    with session_scope() as db:
        info = studies.public_info(db, name)  # 404 ApiError for an unknown study
        prog = progress.study_progress(db, name, _now())
        workers = reports.workers(db, name)["workers"]
        ranking = reports.ranking(db, name) if info["kind"] == "pairwise" else None
        agreement = reports.agreement(db, name) if info["kind"] == "labeling" else None
        overview = quality_view.exclusion_overview(db, name, worker_rows=workers)
        unconfirmed = reports.unconfirmed_sessions(db, name)["unconfirmed"]
        if want_models:
            models = _model_cache().get(info["name"], overview.fingerprint)
            if models is None:
                inputs = quality_view.model_inputs(db, name, [f.worker for f in overview.flagged])
    if inputs is not None:  # fit outside the database session: it takes seconds
        started = time.perf_counter()
        comparison = quality_view.compare_inputs(inputs, MACE_RESTARTS, MACE_ITERATIONS)
        models = _model_cache().put(info["name"], CachedComparison(
            overview.fingerprint, comparison, _now().strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter() - started))
    if ranking is not None:
        ranking = dict(ranking, tasks=ranking_rows(ranking["tasks"]))
    position = _position_summary(prog.get("position"))
    histogram = _histogram_rows(agreement["histogram"]) if agreement else []
    return render_template(
        "admin/study.html",
        study=info,
        progress=prog,
        ranking=ranking,
        agreement=agreement,
        histogram=histogram,
        position=position,
        workers=workers,
        refresh=REFRESH_SECONDS,
        export_what="judgments" if info["kind"] == "pairwise" else "labels",
        overview=overview,
        quality_of={q.worker: q for q in overview.workers},
        flags_of={f.worker: [r.code for r in f.reasons] for f in overview.flagged},
        rules=quality_view.describe_rules(),
        models_requested=want_models,
        models=models,
        unconfirmed=unconfirmed,
    )


@bp.get("/studies/<name>/ranking.png")
def ranking_png(name: str):
    """Bradley–Terry scores with their intervals, most objective on top (PNG)."""
    if (resp := _require_admin()) is not None:
        return resp
    with session_scope() as db:
        ranking = reports.ranking(db, name)
    return _png(plot_ranking(ranking_rows(ranking["tasks"]),
                             f"{name}: task objectivity (n={ranking['n_judgments']})"))


@bp.get("/studies/<name>/position.png")
def position_png(name: str):
    """Share of left wins with its 95 % interval against the no-bias line at 0.5 (PNG)."""
    if (resp := _require_admin()) is not None:
        return resp
    with session_scope() as db:
        prog = progress.study_progress(db, name, _now())
    pos = prog.get("position") or {"left_wins": 0, "right_wins": 0}
    return _png(plot_position(int(pos["left_wins"]), int(pos["right_wins"]), f"{name}: position bias"))


@bp.get("/studies/<name>/agreement.png")
def agreement_png(name: str):
    """Distribution of per-item agreement a_i (PNG)."""
    if (resp := _require_admin()) is not None:
        return resp
    with session_scope() as db:
        agreement = reports.agreement(db, name)
    return _png(plot_agreement(agreement["histogram"], f"{name}: annotation agreement"))


# --- numbers for the templates -------------------------------------------------------------------


def ranking_rows(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the rows of `reports.ranking(...)["tasks"]` (task, score, ci_low, ci_high, n, wins) as
    {task, score, low, high, wins, comparisons} for the table and the plot."""
    return [{"task": t["task"], "score": float(t["score"]), "low": float(t["ci_low"]), "high": float(t["ci_high"]),
             "wins": t.get("wins"), "comparisons": t.get("n")} for t in tasks]


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Return the Wilson score interval (low, high) for a binomial share; (0, 1) when trials == 0."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _position_summary(position: dict[str, Any] | None) -> dict[str, Any] | None:
    if not position:
        return None
    left, right = int(position["left_wins"]), int(position["right_wins"])
    low, high = wilson_interval(left, left + right)
    return {"left_wins": left, "right_wins": right, "n": left + right,
            "left_rate": (left / (left + right)) if left + right else None, "low": low, "high": high}


def _histogram_rows(histogram: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    total = sum(int(row["count"]) for row in histogram)
    return [{"agreement": float(row["agreement"]), "count": int(row["count"]),
             "share": (int(row["count"]) / total) if total else 0.0} for row in histogram]


# --- figures (matplotlib Figure + Agg canvas: no pyplot, no global state) ------------------------


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> Response:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return Response(buf.getvalue(), mimetype="image/png")


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#5b6270")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_ranking(tasks: Sequence[dict[str, Any]], title: str):
    """Return a Figure: one row per task (most objective on top), score as a dot, [low, high] as a bar."""
    fig = _figure(7.0, 1.2 + 0.42 * max(len(tasks), 1))
    ax = fig.add_subplot(1, 1, 1)
    if not tasks:
        _empty(ax, "no tasks yet")
    else:
        ys = list(range(len(tasks)))[::-1]
        scores = [float(t["score"]) for t in tasks]
        lows = [float(t["low"]) for t in tasks]
        highs = [float(t["high"]) for t in tasks]
        ax.errorbar(scores, ys, xerr=[[s - lo for s, lo in zip(scores, lows)],
                                      [hi - s for s, hi in zip(scores, highs)]],
                    fmt="o", color="#1f5fbf", ecolor="#8aa9d8", capsize=3)
        ax.set_yticks(ys)
        ax.set_yticklabels([str(t["task"]) for t in tasks])
        ax.axvline(0.0, color="#d7dce3", linewidth=1)
        ax.set_xlabel("Bradley–Terry score (higher = more objective), with interval")
    ax.set_title(title)
    return fig


def plot_position(left_wins: int, right_wins: int, title: str):
    """Return a Figure: the share of left wins with its 95 % Wilson interval and the 0.5 no-bias line."""
    fig = _figure(6.0, 1.9)
    ax = fig.add_subplot(1, 1, 1)
    n = left_wins + right_wins
    ax.axvline(0.5, color="#a8201a", linestyle="--", linewidth=1.2, zorder=3)
    if n == 0:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no judgments yet", ha="center", va="center", transform=ax.transAxes, color="#5b6270")
    else:
        share = left_wins / n
        low, high = wilson_interval(left_wins, n)
        ax.barh([0], [share], color="#1f5fbf", height=0.5)
        ax.errorbar([share], [0], xerr=[[share - low], [high - share]], fmt="none", ecolor="#1d1f23", capsize=4)
        ax.set_yticks([0])
        ax.set_yticklabels([f"left wins\n{left_wins}/{n}"])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judgments won by the task shown on the left (95 % interval; dashed: no bias)")
    ax.set_title(title)
    return fig


def plot_agreement(histogram: Sequence[dict[str, Any]], title: str):
    """Return a Figure: items per agreement value a_i."""
    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    rows = [(float(r["agreement"]), int(r["count"])) for r in histogram]
    if not rows or not any(c for _, c in rows):
        _empty(ax, "no labeled items yet")
    else:
        xs = [a for a, _ in rows]
        gaps = [b - a for a, b in zip(sorted(xs), sorted(xs)[1:])]
        width = min([0.06] + [0.8 * g for g in gaps if g > 0])
        ax.bar(xs, [c for _, c in rows], width=width, color="#1f5fbf")
        ax.set_xlim(-0.02, 1.05)
        ax.set_xlabel("agreement a_i (share of the majority label)")
        ax.set_ylabel("items")
    ax.set_title(title)
    return fig
