"""Analysis straight from a study in the database, with flagged workers left out: `subjlab agreement
--study NAME --db URL [--exclude-flagged]` on a labeling study, and `load_study_data` /
`load_study_records` returning judgments for a pairwise study (the path `subjlab rank --study` takes).

The studies are built through the JSON API on a real (SQLite) database, over real SMS-spam test messages
and real registry tasks, with a settable clock so that one worker is measurably too fast.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from annotation_server.state import get_state
from tests.support.crowd import answer_everything as work
from tests.support.crowd import answer_quality_study
from annotation_server.quality import ExclusionRules, load_study_data
from subjlab.cli import cli
from subjlab.commands._study_data import OPTION_OF, RULE_FIELDS, exclusion_rules, load_study_records, read_study
from subjlab.records import Judgment, Label



def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@dataclass
class Built:
    """A study built through the API: its database URL and its name."""

    db_url: str
    name: str


@pytest.fixture
def labeled(make_app, clock, api_client, task_data) -> Built:
    """A labeling study "qc": 6 real SMS messages, 4 labels each; 2 gold items and 1 attention check (real
    messages too) every 2nd unit. careful-1 and careful-2 answer truly at 6 s a unit, `hasty` truly at
    0.5 s, `careless` falsely at 6 s (so it fails the attention check and every gold item)."""
    app = make_app(CLOCK=clock)
    answer_quality_study(api_client(app), clock, task_data, "qc")
    return Built(get_state(app).settings.database_url, "qc")


PAIR_TASKS = ["fewrel", "sms_spam", "financial_phrasebank", "tweet_sarcasm"]  # most to least objective here


@pytest.fixture
def judged(make_app, clock, api_client) -> Built:
    """A pairwise study "pw" over 4 real registry tasks, 4 judgments per pair, an attention check and a
    gold pair every 2nd unit. Three steady workers follow PAIR_TASKS' order; `contrarian` picks the other
    task every time (and so fails the attention check). Both checks show pairs of the study, so each takes
    its pair's place in every worker's sequence (a worker never sees a pair twice): each worker judges
    the other 4 pairs."""
    app = make_app(CLOCK=clock)
    api = api_client(app)
    assert api.create_study(name="pw", kind="pairwise", judgments_per_pair=4, gold_every=2).status == 201
    gold = [{"id": "attention-news-vs-irony", "left": "fewrel", "right": "tweet_sarcasm", "answer": "fewrel"},
            {"id": "gold-spam-vs-irony", "left": "tweet_sarcasm", "right": "sms_spam", "answer": "sms_spam"}]
    assert api.add_items("pw", tasks=PAIR_TASKS, gold=gold).status == 201
    for worker in ("steady-1", "steady-2", "steady-3", "contrarian"):
        def choose(a, worker=worker):
            pick = min if worker != "contrarian" else max
            return {"winner": pick(a["left"]["task"], a["right"]["task"], key=PAIR_TASKS.index)}

        assert work(api, clock, "pw", worker, 5.0, choose) == 6  # 4 pairs + the 2 checks on the other 2
    return Built(get_state(app).settings.database_url, "pw")


# ------------------------------------------------------------------------------------ labels
def test_agreement_from_a_study_counts_labels_with_and_without_the_flagged_workers(labeled):
    kept_all = run("agreement", "--study", "qc", "--db", labeled.db_url, "--format", "json")
    assert kept_all.exit_code == 0, kept_all.output
    everything = json.loads(kept_all.stdout)
    assert (everything["n_labels"], everything["n_items"], everything["n_workers"]) == (24, 6, 4)
    assert everything["mean_agreement"] == pytest.approx(0.75)  # 3 true labels and 1 false on every item
    assert everything["study"] == "qc"
    assert everything["excluded"]["applied"] is False and everything["excluded"]["n"] == 0
    assert everything["excluded"]["of"] == 24 and everything["excluded"]["by_reason"] == {}
    assert [w["worker"] for w in everything["excluded"]["workers"]] == ["careless", "hasty"]  # listed, still kept

    cleaned = run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged", "--format", "json")
    assert cleaned.exit_code == 0, cleaned.output
    out = json.loads(cleaned.stdout)
    assert (out["n_labels"], out["n_workers"], out["mean_agreement"]) == (12, 2, 1.0)
    excluded = out["excluded"]
    assert (excluded["applied"], excluded["n"], excluded["of"]) == (True, 12, 24)
    assert excluded["by_reason"] == {"attention": 6, "gold": 6, "too_fast": 6}
    workers = {w["worker"]: w for w in excluded["workers"]}
    assert set(workers) == {"careless", "hasty"} and workers["careless"]["n"] == 6 and workers["hasty"]["n"] == 6
    assert [r["code"] for r in workers["careless"]["reasons"]] == ["attention", "gold"]
    assert workers["careless"]["reasons"][0]["message"] == "failed 1 of 1 attention checks"
    assert workers["hasty"]["reasons"] == [{"code": "too_fast", "message": "median 0.5 s per unit < 2.0 s"}]
    # every key of the file-based report is still there
    from_file_keys = {"items", "mean_agreement", "fleiss_kappa", "krippendorff_alpha", "n_items", "n_labels"}
    assert from_file_keys <= set(out)


def test_exclusion_thresholds_from_the_command_line_change_who_is_left_out(labeled):
    slow_ok = json.loads(run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged",
                             "--min-seconds", "0", "--format", "json").stdout)
    assert slow_ok["n_labels"] == 18 and slow_ok["excluded"]["by_reason"] == {"attention": 6, "gold": 6}
    lenient = json.loads(run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged",
                             "--max-failed-attention", "1", "--min-gold", "0", "--format", "json").stdout)
    assert lenient["n_labels"] == 18 and [w["worker"] for w in lenient["excluded"]["workers"]] == ["hasty"]
    strict = json.loads(run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged",
                            "--min-seconds", "0", "--max-failed-attention", "1", "--min-gold", "0",
                            "--min-agreement", "0.9", "--min-agreement-units", "3", "--format", "json").stdout)
    # agreement with the majority of the others: careless never agrees (0 of 6 items)
    assert [w["worker"] for w in strict["excluded"]["workers"]] == ["careless"]
    assert strict["excluded"]["by_reason"] == {"agreement": 6} and strict["mean_agreement"] == 1.0


def test_table_output_says_how_many_labels_were_excluded_and_why(labeled):
    res = run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged")
    assert res.exit_code == 0, res.output
    assert "Agreement of study qc" in res.stdout
    assert "excluded 12 of 24 labels from 2 flagged worker(s) (attention: 6, gold: 6, too_fast: 6)" in res.stdout
    assert re.search(r"careless\s*│\s*6\s*│\s*attention: failed 1 of 1 attention checks; gold: gold accuracy 0\.00", res.stdout)
    kept = run("agreement", "--study", "qc", "--db", labeled.db_url)
    assert "2 flagged worker(s); exclusion not applied (24 labels kept)" in kept.stdout
    assert "add --exclude-flagged to leave them out" in kept.stdout


def test_jsonl_output_stays_clean_and_the_exclusion_goes_to_stderr(labeled):
    res = run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 6 and all(r["agreement"] == 1.0 for r in lines)
    assert "excluded 12 of 24 labels" in res.stderr and "hasty (6 labels): too_fast" in res.stderr


def test_study_options_fail_cleanly(labeled, tmp_path):
    unknown = run("agreement", "--study", "nope", "--db", labeled.db_url)
    assert unknown.exit_code == 2 and "error: unknown study" in unknown.stderr
    missing = run("agreement", "--study", "qc", "--db", f"sqlite:///{tmp_path / 'absent.db'}")
    assert missing.exit_code == 2 and "absent.db" in missing.stderr and "does not exist" in missing.stderr
    assert not (tmp_path / "absent.db").exists()  # not created by looking
    everyone = run("agreement", "--study", "qc", "--db", labeled.db_url, "--exclude-flagged", "--min-seconds", "100")
    assert everyone.exit_code == 2
    assert "error: study 'qc' has no labels left after excluding the flagged workers" in everyone.stderr
    both = run("agreement", str(tmp_path / "labels.jsonl"), "--study", "qc")
    assert both.exit_code == 2 and "exactly one of" in both.stderr
    stray = run("agreement", str(tmp_path / "labels.jsonl"), "--exclude-flagged", "--min-seconds", "1")
    assert stray.exit_code == 2 and "--exclude-flagged, --min-seconds: these options need --study NAME" in stray.stderr


def test_the_rule_options_document_the_library_defaults():
    from subjlab.commands.agreement import agreement

    helps = {p.name: p.help for p in agreement.params}
    defaults = ExclusionRules()
    for name in RULE_FIELDS:
        value = getattr(defaults, name)
        shown = "off" if value is None else repr(value)
        assert f"[default: {shown}" in helps[name], (OPTION_OF[name], helps[name])
    assert exclusion_rules() == defaults
    off = exclusion_rules(min_median_seconds=0, min_gold_accuracy=0, max_failed_attention=2)
    assert (off.min_median_seconds, off.min_gold_accuracy, off.max_failed_attention) == (None, None, 2)


# ------------------------------------------------------------------------------------ judgments
def test_load_study_data_returns_judgments_of_a_pairwise_study_without_the_flagged_workers(judged):
    everything, report = load_study_data(judged.db_url, "pw", exclude_flagged=False)
    assert len(everything) == 16 and all(isinstance(j, Judgment) for j in everything)
    assert {j.study for j in everything} == {"pw"} and report.kind == "pairwise" and not report.applied
    assert [f.worker for f in report.flagged] == ["contrarian"]
    kept, report = load_study_data(judged.db_url, "pw", exclude_flagged=True)
    assert len(kept) == 12 and "contrarian" not in {j.worker for j in kept}
    assert report.lines() == ["excluded 4 of 16 judgments from 1 flagged worker(s) (attention: 4)"]
    assert not any(isinstance(j, Label) for j in kept)


def test_the_rank_path_reads_judgments_and_excluding_the_contrarian_sharpens_the_ranking(judged):
    from analysis.ranking import BradleyTerryRanker

    data = load_study_records(judged.db_url, "pw", "pairwise", exclude_flagged=True)
    assert len(data.records) == 12 and data.per_worker == {"contrarian": 4}
    assert data.report.excluded_by_reason == {"attention": 4}
    everything = load_study_records(judged.db_url, "pw", "pairwise", exclude_flagged=False)
    assert len(everything.records) == 16 and everything.report.n_excluded == 0
    clean = BradleyTerryRanker(n_bootstrap=0).fit(data.records)
    noisy = BradleyTerryRanker(n_bootstrap=0).fit(everything.records)
    assert [r.task for r in clean.ranking()] == PAIR_TASKS == [r.task for r in noisy.ranking()]
    spread = lambda ranker: ranker.scores_[PAIR_TASKS[0]] - ranker.scores_[PAIR_TASKS[-1]]  # noqa: E731
    assert spread(clean) > spread(noisy) > 0
    # the one call `subjlab rank --study` makes, thresholds as the options pass them
    lenient = read_study("pairwise", "pw", judged.db_url, True, {"max_failed_attention": 1, "min_gold_accuracy": None})
    assert len(lenient.records) == 16 and lenient.report.flagged == ()
    strict = read_study("pairwise", "pw", judged.db_url, True, {"max_failed_attention": None})
    assert len(strict.records) == 12 and strict.report.applied
    with pytest.raises(ValueError, match="pairwise study, not a labeling one .*subjlab rank --study"):
        load_study_records(judged.db_url, "pw", "labeling", exclude_flagged=True)
    res = run("agreement", "--study", "pw", "--db", judged.db_url)
    assert res.exit_code == 2 and "use subjlab rank --study" in res.stderr


def test_rank_from_a_study_excludes_the_contrarian_and_reports_why(judged):
    everything = run("rank", "--study", "pw", "--db", judged.db_url, "--bootstrap", "50", "--format", "json")
    assert everything.exit_code == 0, everything.output
    full = json.loads(everything.stdout)
    assert full["study"] == "pw" and full["excluded"]["applied"] is False and full["excluded"]["of"] == 16
    assert sum(r["n"] for r in full["ranking"]) == 2 * 16

    cleaned = run("rank", "--study", "pw", "--db", judged.db_url, "--exclude-flagged", "--bootstrap", "50", "--format", "json")
    assert cleaned.exit_code == 0, cleaned.output
    out = json.loads(cleaned.stdout)
    assert (out["excluded"]["n"], out["excluded"]["by_reason"]) == (4, {"attention": 4})
    assert sum(r["n"] for r in out["ranking"]) == 2 * 12
    assert [r["task"] for r in out["ranking"]] == PAIR_TASKS  # the steady workers' order, most objective first

    table = run("rank", "--study", "pw", "--db", judged.db_url, "--exclude-flagged", "--bootstrap", "20")
    assert table.exit_code == 0 and "contrarian" in table.output


def test_rank_needs_a_file_or_a_study_not_both(judged, tmp_path):
    neither = run("rank")
    assert neither.exit_code == 2 and "either a JUDGMENTS file or --study" in neither.output
    f = tmp_path / "j.jsonl"
    f.write_text('{"left": "a", "right": "b", "winner": "a"}\n')
    both = run("rank", str(f), "--study", "pw", "--db", judged.db_url)
    assert both.exit_code == 2
    flag_only = run("rank", str(f), "--exclude-flagged")
    assert flag_only.exit_code == 2 and "need --study" in flag_only.output
