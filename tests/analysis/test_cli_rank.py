"""`subjlab rank` as a user runs it: JSON interface, table, suggestions, new task, plot, errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from analysis.simulate import SimulatedCrowd, random_pairs
from subjlab.cli import cli
from subjlab.records import write_records

TRUTH = {"ag_news": 1.6, "sms_spam": 1.0, "imdb": 0.3, "tweet_irony": -1.2, "humor": -1.7}


@pytest.fixture
def judgments_file(tmp_path):
    js = SimulatedCrowd(TRUTH, seed=0, spammer_share=0.0).judge_pairs(random_pairs(sorted(TRUTH), 200, seed=0))
    path = tmp_path / "judgments.jsonl"
    write_records(path, js)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, ["rank", *args])


def test_json_is_a_list_of_rows_most_objective_first(judgments_file):
    res = run(str(judgments_file), "--format", "json", "--bootstrap", "200")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert isinstance(rows, list)
    assert [r["task"] for r in rows] == sorted(TRUTH, key=TRUTH.get, reverse=True)
    for r in rows:
        assert set(r) >= {"task", "score", "ci_low", "ci_high", "rank", "n"}
        assert r["ci_low"] <= r["score"] <= r["ci_high"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert sum(r["n"] for r in rows) == 2 * 200
    assert abs(sum(r["score"] for r in rows)) < 1e-9


def test_table_lists_every_task_with_its_interval(judgments_file):
    res = run(str(judgments_file), "--bootstrap", "50")
    assert res.exit_code == 0, res.output
    for task in TRUTH:
        assert task in res.stdout
    assert "Objectivity ranking (200 judgments)" in res.stdout
    assert "[" in res.stdout and "95% CI" in res.stdout


def test_suggest_emits_ranking_and_distinct_pairs(judgments_file):
    res = run(str(judgments_file), "--format", "json", "--bootstrap", "0", "--suggest", "4")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [r["task"] for r in out["ranking"]][0] == "ag_news"
    assert out["ranking"][0]["ci_low"] is None  # --bootstrap 0: no intervals
    pairs = [(s["left"], s["right"]) for s in out["suggestions"]]
    assert len(pairs) == 4 and len({frozenset(p) for p in pairs}) == 4
    assert all(a in TRUTH and b in TRUTH and a != b for a, b in pairs)
    balanced = json.loads(run(str(judgments_file), "--format", "json", "--bootstrap", "0", "--suggest", "3", "--design", "balanced").stdout)
    assert len(balanced["suggestions"]) == 3


def test_new_task_is_placed_with_neighbours_and_next_comparisons(tmp_path, judgments_file):
    crowd = SimulatedCrowd(dict(TRUTH, mine=0.6), seed=1, spammer_share=0.0)
    extra = crowd.judge_pairs([("mine", t) for t in TRUTH for _ in range(8)])
    path = tmp_path / "with_new.jsonl"
    path.write_text(judgments_file.read_text() + "".join(json.dumps(j.to_dict()) + "\n" for j in extra))
    res = run(str(path), "--format", "json", "--bootstrap", "100", "--new-task", "mine", "--suggest", "2")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    placement = out["placement"]
    assert placement["task"] == "mine" and placement["n"] == 40
    assert placement["above"] == "sms_spam" and placement["below"] == "imdb"
    assert len(out["suggestions"]) == 2
    assert all("mine" in (s["left"], s["right"]) for s in out["suggestions"])
    table = run(str(path), "--bootstrap", "50", "--new-task", "mine")
    assert table.exit_code == 0
    assert "mine: score" in table.stdout and "below sms_spam, above imdb" in table.stdout


def _highlight_pixels(png) -> int:
    import matplotlib.image as mpimg
    import numpy as np

    from analysis.plots import HIGHLIGHT_COLOUR

    image = mpimg.imread(png)[:, :, :3]
    target = np.array([int(HIGHLIGHT_COLOUR[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.all(np.abs(image - target) < 0.06, axis=2).sum())


def test_plot_writes_a_png(tmp_path, judgments_file):
    png = tmp_path / "out" / "ranking.png"
    res = run(str(judgments_file), "--bootstrap", "50", "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _highlight_pixels(png) == 0  # no --new-task: nothing highlighted


def test_plot_highlights_the_new_task(tmp_path, judgments_file):
    png = tmp_path / "placed.png"
    res = run(str(judgments_file), "--bootstrap", "50", "--new-task", "imdb", "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert f"wrote {png}" in res.stderr
    assert _highlight_pixels(png) > 50


def test_plot_of_a_new_task_without_judgments_says_it_is_not_shown(tmp_path, judgments_file):
    png = tmp_path / "unplaced.png"
    res = run(str(judgments_file), "--bootstrap", "20", "--new-task", "brand_new", "--plot", str(png))
    assert res.exit_code == 0, res.output
    assert "note: brand_new has no judgments yet, so the plot cannot show it" in res.stderr
    assert png.is_file() and _highlight_pixels(png) == 0


def test_disconnected_judgments_warn_on_stderr(tmp_path):
    path = tmp_path / "j.jsonl"
    rows = [{"left": "a", "right": "b", "winner": "a"}, {"left": "c", "right": "d", "winner": "d"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = run(str(path), "--format", "json", "--bootstrap", "10")
    assert res.exit_code == 0
    assert "warning: the comparison graph is disconnected: 2 components ({a, b}; {c, d})" in res.stderr
    assert len(json.loads(res.stdout)) == 4


def test_bad_file_is_an_error_naming_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"left": "a", "right": "b", "winner": "a"}\n{"left": "a", "right": "b", "winner": "c"}\n')
    res = run(str(path))
    assert res.exit_code == 2
    assert f"error: {path}:2: field 'winner':" in res.stderr
    assert "Traceback" not in res.output

    path.write_text('{"left": "a", "right": "b", "winner": "a"}\nnot json\n')
    res = run(str(path))
    assert res.exit_code == 2 and f"{path}:2:" in res.stderr and "not valid JSON" in res.stderr

    res = run(str(tmp_path / "missing.jsonl"))
    assert res.exit_code == 2 and "no such file" in res.stderr

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    res = run(str(empty))
    assert res.exit_code == 2 and "no judgments" in res.stderr


def test_help_explains_the_input_and_the_json_interface():
    res = run("--help")
    assert res.exit_code == 0
    assert "MORE OBJECTIVE" in res.output and "--suggest" in res.output and "--new-task" in res.output
    assert "--stop-at" in res.output and "You can stop" in res.output


def test_table_says_how_settled_the_ranking_is_and_whether_to_stop(judgments_file):
    res = run(str(judgments_file), "--bootstrap", "0")
    assert res.exit_code == 0, res.output
    from analysis.stopping import StoppingRule
    from subjlab.records import read_judgments

    expected = StoppingRule().fit(read_judgments(judgments_file)).report()
    assert f"= {expected.p_settled:.2f}; expected misordered pairs {expected.expected_misordered:.1f} of 10" in res.stdout
    assert "You can stop: " in res.stdout  # 200 clean judgments of 5 well-separated tasks
    strict = run(str(judgments_file), "--bootstrap", "0", "--stop-at", "0.999", "--stop-tau", "1")
    assert strict.exit_code == 0, strict.output
    assert "Keep collecting: " in strict.stdout and "below your threshold 0.999" in strict.stdout
    assert "Least settled: " in strict.stdout


def test_json_adds_the_stopping_rule_only_as_a_new_key(judgments_file):
    plain = json.loads(run(str(judgments_file), "--format", "json", "--bootstrap", "0").stdout)
    assert isinstance(plain, list)  # the stable list interface is unchanged without --stop-at
    out = json.loads(run(str(judgments_file), "--format", "json", "--bootstrap", "0", "--stop-at", "0.5").stdout)
    assert out["ranking"] == plain
    stopping = out["stopping"]
    assert stopping["stop_at"] == 0.5 and stopping["tau"] == 0.9 and stopping["n_pairs"] == 10
    assert stopping["can_stop"] == (stopping["p_settled"] >= 0.5)
    assert 0.0 <= stopping["p_settled"] <= 1.0 and stopping["allowed_misordered"] == 0
    assert all(set(p) == {"above", "below", "p_misordered"} for p in stopping["open_pairs"])
    suggested = json.loads(run(str(judgments_file), "--format", "json", "--bootstrap", "0", "--suggest", "2").stdout)
    assert set(suggested) == {"ranking", "suggestions", "stopping"}
    assert suggested["stopping"]["p_settled"] == stopping["p_settled"]


def test_stop_options_out_of_range_are_usage_errors(judgments_file):
    for args in (["--stop-at", "1"], ["--stop-at", "0"], ["--stop-tau", "1.5"]):
        res = run(str(judgments_file), *args)
        assert res.exit_code == 2 and "Invalid value" in res.output and "Traceback" not in res.output
