"""`subjlab agreement` and `subjlab evaluate` as a user runs them: JSON / table / JSONL outputs, the
agreement -> evaluate round trip, plots, and clean errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from subjlab.cli import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def labels_file(tmp_path: Path) -> Path:
    # i1: pos pos pos -> 1.0; i2: pos neg pos -> 2/3; i3: neg pos -> tie 1/2 (alphabetical: neg);
    # i4: one label -> 1.0 (single); w1 relabels i2 (neg -> pos): the last label counts.
    rows = [
        ("i1", "w1", "pos"), ("i1", "w2", "pos"), ("i1", "w3", "pos"),
        ("i2", "w1", "neg"), ("i2", "w2", "neg"), ("i2", "w3", "pos"), ("i2", "w1", "pos"),
        ("i3", "w1", "neg"), ("i3", "w2", "pos"),
        ("i4", "w3", "neg"),
    ]
    return write_lines(tmp_path / "labels.jsonl", [{"item": i, "worker": w, "label": lab, "created_at": ""} for i, w, lab in rows])


def test_agreement_json_has_the_stable_keys_and_hand_computed_values(labels_file):
    res = run("agreement", str(labels_file), "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    items = {it["item"]: it for it in out["items"]}
    assert {k: items["i2"][k] for k in ("item", "agreement", "majority", "n_labels")} == {
        "item": "i2", "agreement": pytest.approx(2 / 3), "majority": "pos", "n_labels": 3,
    }
    assert items["i3"]["tie"] is True and items["i3"]["majority"] == "neg" and items["i3"]["agreement"] == 0.5
    assert items["i4"]["single"] is True and items["i4"]["agreement"] == 1.0 and items["i4"]["n_labels"] == 1
    # mean = (1 + 2/3 + 1/2 + 1)/4 = 19/24
    assert out["mean_agreement"] == pytest.approx(19 / 24)
    assert out["fleiss_kappa"] is None and out["fleiss_kappa_note"]
    assert isinstance(out["krippendorff_alpha"], float)
    assert out["n_duplicates_replaced"] == 1


def test_agreement_tie_follows_the_task_label_order(tmp_path):
    path = write_lines(tmp_path / "l.jsonl", [
        {"item": "s1", "worker": "a", "label": "positive"}, {"item": "s1", "worker": "b", "label": "negative"},
    ])
    res = run("agreement", str(path), "--format", "json", "--task", "financial_phrasebank")
    assert json.loads(res.stdout)["items"][0]["majority"] == "negative"  # task order: negative, neutral, positive
    res = run("agreement", str(path), "--format", "json", "--duplicates", "error")
    assert json.loads(res.stdout)["items"][0]["majority"] == "negative"  # alphabetical


def test_agreement_table_is_a_summary_and_distribution(labels_file):
    res = run("agreement", str(labels_file))
    assert res.exit_code == 0, res.output
    assert "mean agreement" in res.stdout and "Krippendorff" in res.stdout
    assert "Items per agreement value" in res.stdout and "0.667" in res.stdout
    assert "items with a single label" in res.stdout


def test_agreement_jsonl_feeds_evaluate(labels_file, tmp_path):
    res = run("agreement", str(labels_file), "--format", "jsonl")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert all(set(r) == {"item", "agreement"} for r in lines) and len(lines) == 4
    agreement = tmp_path / "agreement.jsonl"
    agreement.write_text(res.stdout)
    # i1 right, i2 right, i3 wrong, i4 wrong
    preds = write_lines(tmp_path / "preds.jsonl", [
        {"id": "i1", "label": "pos", "prediction": "pos"},
        {"id": "i2", "label": "pos", "prediction": "pos"},
        {"id": "i3", "label": "neg", "prediction": "pos"},
        {"id": "i4", "label": "neg", "prediction": "pos"},
    ])
    res = run("evaluate", str(preds), "--agreement", str(agreement), "--gammas", "0.5,0.6,1.0", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [{k: r[k] for k in ("gamma", "n")} for r in out] == [{"gamma": 0.5, "n": 4}, {"gamma": 0.6, "n": 3}, {"gamma": 1.0, "n": 2}]
    # γ=0.5: 2/4; γ=0.6 (i1, i2, i4): 2/3; γ=1.0 (i1, i4): 1/2
    assert [r["accuracy"] for r in out] == pytest.approx([0.5, 2 / 3, 0.5])


def test_agreement_plot_and_phrasebank_levels(tmp_path, task_data):
    raw = [json.loads(line) for line in (task_data / "financial_phrasebank" / "test.jsonl").open(encoding="utf-8")]
    full = sum(row["agreement"] == "100" for row in raw)
    png = tmp_path / "hist.png"
    res = run("agreement", "--phrasebank", "test", "--data", str(task_data), "--plot", str(png), "--format", "jsonl")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["item"] for r in lines] == [row["id"] for row in raw]
    assert sum(r["agreement"] == 1.0 for r in lines) == full == 286
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    table = run("agreement", "--phrasebank", "test")  # the bundled data is the default
    assert str(full) in table.stdout and "0.667" in table.stdout


def test_agreement_from_data_takes_the_ratings_through_the_crowd_label_path(task_data):
    raw = [json.loads(line) for line in (task_data / "tweet_sarcasm" / "test.jsonl").open(encoding="utf-8")]
    res = run("agreement", "--from-data", "tweet_sarcasm:test", "--format", "jsonl")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["item"] for r in lines] == [row["id"] for row in raw]
    assert [r["agreement"] for r in lines] == pytest.approx([row["agreement"] for row in raw])  # the file's own field
    out = json.loads(run("agreement", "--from-data", "tweet_sarcasm:test", "--format", "json").stdout)
    assert out["n_items"] == 400 and out["n_labels"] == 2000 and out["from_data"] == "tweet_sarcasm:test"
    assert 0.4 < out["fleiss_kappa"] < 0.7 and out["krippendorff_alpha"] == pytest.approx(out["fleiss_kappa"], abs=0.002)
    assert out["majority_matches_gold"] == pytest.approx(sum(r["perceived_majority"] == r["label"] for r in raw) / 400)
    table = run("agreement", "--from-data", "tweet_sarcasm:test", "--data", str(task_data)).stdout
    assert "Krippendorff" in table and "majority rating = the split's gold label" in table and "0.545" in table


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
def test_phrasebank_is_an_alias_of_from_data_with_identical_output(fmt):
    alias = run("agreement", "--phrasebank", "test", "--format", fmt)
    general = run("agreement", "--from-data", "financial_phrasebank:test", "--format", fmt)
    assert alias.exit_code == general.exit_code == 0
    assert alias.stdout == general.stdout and "Financial PhraseBank" in run("agreement", "--phrasebank", "train").stdout


def test_agreement_from_data_errors_are_clean():
    res = run("agreement", "--from-data", "sms_spam:test")
    assert res.exit_code == 2 and "task sms_spam: the examples carry no per-item 'ratings'" in res.output
    res = run("agreement", "--from-data", "tweet_sarcasm")
    assert res.exit_code == 2 and "expected TASK:SPLIT" in res.output
    res = run("agreement", "--from-data", "tweet_sarcasm:dev")
    assert res.exit_code == 2 and "expected TASK:SPLIT" in res.output
    res = run("agreement", "--from-data", "tweet_sarcasm:test", "--task", "sms_spam")
    assert res.exit_code == 2 and "--task is implied" in res.output
    res = run("agreement", "--from-data", "tweet_sarcasm:test", "--phrasebank", "test")
    assert res.exit_code == 2 and "exactly one of" in res.output
    assert "Traceback" not in res.output


def test_evaluate_several_curves_table_and_plot(tmp_path):
    agreement = write_lines(tmp_path / "a.jsonl", [{"item": f"x{i}", "agreement": a} for i, a in enumerate([1.0, 1.0, 0.6, 0.6])])
    real = write_lines(tmp_path / "real.jsonl", [{"id": f"x{i}", "label": "a", "prediction": "a"} for i in range(4)])
    zero = write_lines(tmp_path / "zero.jsonl", [{"id": f"x{i}", "label": "a", "prediction": "a" if i < 2 else "b"} for i in range(4)])
    png = tmp_path / "gamma.png"
    res = run("evaluate", str(real), str(zero), "--label", "real", "--label", "zero-shot", "--agreement", str(agreement),
              "--gammas", "0.5,1", "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert "zero-shot" in res.stdout and "0.500" in res.stdout  # zero-shot at γ=0.5: 2 of 4
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10000
    res = run("evaluate", str(real), str(zero), "--agreement", str(agreement), "--gammas", "0.5,1", "--format", "json")
    rows = json.loads(res.stdout)
    assert [(r["curve"], r["gamma"], r["accuracy"]) for r in rows] == [("real", 0.5, 1.0), ("real", 1.0, 1.0), ("zero", 0.5, 0.5), ("zero", 1.0, 1.0)]


def test_evaluate_empty_subset_is_null_in_json(tmp_path):
    agreement = write_lines(tmp_path / "a.jsonl", [{"item": "x", "agreement": 0.5}])
    preds = write_lines(tmp_path / "p.jsonl", [{"id": "x", "label": "a", "prediction": "a"}])
    res = run("evaluate", str(preds), "--agreement", str(agreement), "--gammas", "0.9", "--format", "json")
    assert json.loads(res.stdout) == [{"gamma": 0.9, "n": 0, "accuracy": None, "macro_f1": None, "curve": "p"}]


def test_evaluate_errors_are_clean_and_name_file_and_line(tmp_path):
    agreement = write_lines(tmp_path / "a.jsonl", [{"item": "x", "agreement": 0.5}])
    bad = tmp_path / "preds.jsonl"
    bad.write_text('{"id": "x", "label": "a", "prediction": "a"}\n{"id": "y", "label": "a"}\n')
    res = run("evaluate", str(bad), "--agreement", str(agreement))
    assert res.exit_code == 2 and "preds.jsonl:2" in res.output and "'prediction'" in res.output
    assert "Traceback" not in res.output
    bad_agreement = tmp_path / "bad_a.jsonl"
    bad_agreement.write_text('{"item": "x", "agreement": 1.5}\n')
    res = run("evaluate", str(bad), "--agreement", str(bad_agreement))
    assert res.exit_code == 2 and "bad_a.jsonl:1" in res.output and "'agreement'" in res.output
    preds = write_lines(tmp_path / "p.jsonl", [{"id": "x", "label": "a", "prediction": "a"}, {"id": "zz", "label": "a", "prediction": "a"}])
    res = run("evaluate", str(preds), "--agreement", str(agreement))
    assert res.exit_code == 2 and "p.jsonl" in res.output and "'zz'" in res.output
    res = run("evaluate", str(preds), "--agreement", str(agreement), "--missing", "drop", "--format", "json")
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["n"] == 1
    res = run("evaluate", str(preds), "--agreement", str(agreement), "--gammas", "0.5,abc")
    assert res.exit_code == 2 and "'abc' is not a number" in res.output
    res = run("evaluate", str(preds))
    assert res.exit_code == 2 and "--agreement" in res.output


def test_agreement_errors_are_clean(tmp_path):
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"item": "a", "worker": "w", "label": "x"}\n{"item": "a", "worker": "w2"}\n')
    res = run("agreement", str(bad))
    assert res.exit_code == 2 and "labels.jsonl:2" in res.output and "'label'" in res.output
    assert "Traceback" not in res.output
    res = run("agreement", str(tmp_path / "absent.jsonl"))
    assert res.exit_code == 2 and "absent.jsonl" in res.output and "no such file" in res.output
    res = run("agreement")
    assert res.exit_code == 2 and "--phrasebank" in res.output
    dup = write_lines(tmp_path / "dup.jsonl", [{"item": "a", "worker": "w", "label": "x"}] * 2)
    res = run("agreement", str(dup), "--duplicates", "error")
    assert res.exit_code == 2 and "more than once" in res.output


def test_correlate_reads_rank_output_and_gaps(tmp_path):
    rank = tmp_path / "rank.json"
    rank.write_text(json.dumps([
        {"task": t, "score": s, "ci_low": s - 0.5, "ci_high": s + 0.5, "rank": r, "n": 40}
        for r, (t, s) in enumerate([("ag_news", 1.5), ("imdb", 0.7), ("tweet_irony", -0.4), ("humor", -1.1)], start=1)
    ]))
    gaps = write_lines(tmp_path / "gaps.jsonl", [
        {"task": "ag_news", "gap": 0.02}, {"task": "imdb", "gap": 0.08}, {"task": "tweet_irony", "gap": 0.06},
        {"task": "humor", "gap": 0.3}, {"task": "sms_spam", "gap": 0.01},
    ])
    png = tmp_path / "gap.png"
    res = run("evaluate", "--correlate", "--subjectivity", str(rank), "--gaps", str(gaps), "--format", "json", "--plot", str(png))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    # objectivity ranks 4,3,2,1 vs gap ranks 1,3,2,4: sum d^2 = 9+0+0+9 = 18 -> rho = 1 - 6*18/60 = -0.8;
    # Kendall: 1 concordant (imdb, tweet_irony), 5 discordant -> tau = -4/6
    assert out["n"] == 4 and out["spearman_rho"] == pytest.approx(-0.8) and out["kendall_tau"] == pytest.approx(-2 / 3)
    assert out["expected_sign"] == "negative" and out["only_in_gaps"] == ["sms_spam"]
    assert {"spearman_p", "kendall_p", "tasks"} <= set(out)
    assert png.read_bytes()[:8] == PNG_MAGIC
    table = run("evaluate", "--correlate", "--subjectivity", str(rank), "--gaps", str(gaps))
    assert table.exit_code == 0 and "Spearman" in table.stdout and "negative" in table.stdout
    assert "sms_spam" in table.stderr


def test_correlate_errors(tmp_path):
    scores = write_lines(tmp_path / "s.jsonl", [{"task": "a", "score": 1}, {"task": "b", "score": 2}])
    gaps = write_lines(tmp_path / "g.jsonl", [{"task": "a", "gap": 1}, {"task": "b", "gap": "big"}])
    res = run("evaluate", "--correlate", "--subjectivity", str(scores), "--gaps", str(gaps))
    assert res.exit_code == 2 and "g.jsonl:2" in res.output and "'gap'" in res.output
    gaps.write_text('{"task": "a", "gap": 1}\n{"task": "b", "gap": 2}\n')
    res = run("evaluate", "--correlate", "--subjectivity", str(scores), "--gaps", str(gaps))
    assert res.exit_code == 2 and "at least 3 tasks" in res.output
    res = run("evaluate", "--correlate", "--subjectivity", str(scores))
    assert res.exit_code == 2 and "--gaps" in res.output


def test_help_explains_the_sign_convention():
    res = run("evaluate", "--help")
    assert res.exit_code == 0 and "NEGATIVE" in res.output and "OBJECTIVITY" in res.output
    assert "Example" in run("agreement", "--help").output
