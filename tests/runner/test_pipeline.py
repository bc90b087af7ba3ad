"""The study runner end to end on a miniature config: real data slices, the real local LLM, real
training for a few steps, the real analyses and the report; then re-runs that must recompute nothing
(or only what a changed setting touches).

The judgments files written here are TEST DATA made up for the test (marked as such in their
`study` field); they stand for no real crowd.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.records import read_examples, read_predictions, write_records, Judgment
from subjlab.runner.config import load_config
from subjlab.runner.pipeline import count_steps, run_study
from subjlab.runner.steps import read_log

pytestmark = pytest.mark.slow

MINI = """
[study]
name = "mini"
tasks = ["financial_phrasebank"]
seed = 3

[data]
train_per_label = 6
test_per_label = 6
small_real_per_label = 2

[generation]
backend = "local"
per_label = 2
few_shot_k = 2

[generation.options]
max_tokens = 40
max_turns = 3
cache = false

[training]
epochs = 1
max_steps = 2
batch_size = 8
max_length = 32

[training.options]
val_fraction = 0.0

[evaluation]
gammas = [0.5, 0.75, 1.0]
"""
CONDITIONS = ("real", "zero_shot", "few_shot", "small_real_few_shot")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The miniature study, run once through the CLI: (config path, runs dir, CLI result)."""
    root = tmp_path_factory.mktemp("study")
    config = root / "mini.toml"
    config.write_text(MINI, encoding="utf-8")
    runs = root / "runs"
    result = CliRunner().invoke(cli, ["run", str(config), "--runs-dir", str(runs)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return config, runs, result


def quiet(_line: str) -> None:
    pass


def test_first_run_runs_every_step_and_prints_progress_report_path_and_table(study):
    config, runs, result = study
    run_dir = runs / "mini"
    total = count_steps(load_config(config))
    assert total == 17  # data, agreement, 2 x generate, mix, 4 x train, 4 x diversity, 4 x stratified
    assert "torch threads: " in result.output.splitlines()[0]  # chosen for the machine's load (no --threads)
    assert f"[1/{total}] financial_phrasebank/real/data: running ..." in result.output
    assert " (CPU " in result.output  # every step that ran reports its CPU time beside its wall time
    assert f"[{total}/{total}] " in result.output
    assert "Macro-F1 (%) on the real test split, backbone minilm" in result.output
    assert "Findings of the paper, judged by 95% intervals: " in result.output
    assert f"report: {run_dir / 'report.html'}" in result.output
    log = read_log(run_dir / "steps.jsonl")
    assert len(log) == total and {r.status for r in log} == {"ran"}
    assert all((Path(r.directory) / "done.json").is_file() for r in log)


def test_every_condition_is_trained_and_evaluated_on_the_real_test_slice(study):
    _, runs, _ = study
    task_dir = runs / "mini" / "financial_phrasebank"
    test = read_examples(task_dir / "real" / "data" / "test.jsonl")
    assert len(test) == 18 and all("agreement" in ex.extra for ex in test)
    for cond in CONDITIONS:
        train_dir = task_dir / cond / "train-minilm-s3"
        metrics = json.loads((train_dir / "metrics.json").read_text())
        assert 0.0 <= metrics["macro_f1"] <= 1.0 and metrics["eval_size"] == 18
        predictions = read_predictions(train_dir / "predictions.jsonl")
        assert [p.id for p in predictions] == [ex.id for ex in test]
    for mode in ("zero_shot", "few_shot"):
        data = read_examples(task_dir / mode / "generate" / "data.jsonl")
        per_label = {lab: sum(ex.label == lab for ex in data) for lab in ("negative", "neutral", "positive")}
        assert per_label == {"negative": 2, "neutral": 2, "positive": 2}
        assert {ex.extra["mode"] for ex in data} == {mode.replace("_", "-")}
        assert {ex.extra["backend"] for ex in data} == {"local"}
    mixed = read_examples(task_dir / "small_real_few_shot" / "data" / "train.jsonl")
    assert len(mixed) == 6 + 6  # 2 real per label + the 6 few-shot texts


def test_report_has_table_one_gamma_curves_diversity_and_the_no_judgments_box(study):
    _, runs, _ = study
    md = (runs / "mini" / "report.md").read_text(encoding="utf-8")
    html = (runs / "mini" / "report.html").read_text(encoding="utf-8")
    results = json.loads((runs / "mini" / "results.json").read_text(encoding="utf-8"))
    cells = {c["condition"]: c for c in results["performance"]}
    assert set(cells) == set(CONDITIONS)
    real = cells["real"]
    ci = real["macro_f1_interval"]
    assert ci["low"] <= real["macro_f1"] <= ci["high"] and ci["level"] == 0.95
    assert (f"| financial_phrasebank | - | 18 | {real['macro_f1'] * 100:.1f} [{ci['low'] * 100:.1f}, "
            f"{ci['high'] * 100:.1f}] |") in md
    # the cell's value is the model's own test Macro-F1 (training's metrics.json), the interval around it
    metrics = json.loads((runs / "mini" / "financial_phrasebank" / "real" / "train-minilm-s3" / "metrics.json").read_text())
    assert real["macro_f1"] == pytest.approx(metrics["macro_f1"]) and real["accuracy"] == pytest.approx(metrics["accuracy"])
    # every real − synthetic gap has a paired interval; Findings judge the order by them
    gaps = [c for c in results["contrasts"] if c["kind"] == "gap"]
    assert {(c["b"], c["metric"]) for c in gaps} == {(c, m) for c in CONDITIONS[1:] for m in ("macro_f1", "accuracy")}
    assert "### Real − synthetic gaps" in md and "## Findings" in md
    verdicts = {f["claim"]: f["verdict"] for f in results["findings"]}
    assert set(verdicts) >= {"real > few-shot > zero-shot (Macro-F1)", "the real − synthetic gap grows with task subjectivity",
                             "real data is the most diverse (Remote Clique)"}
    assert set(verdicts.values()) <= {"supported", "contradicted", "undetermined"}
    # γ points carry bands
    curve = next(c for c in results["curves"] if c["condition"] == "real")
    assert all(b["accuracy"]["low"] <= s["accuracy"] <= b["accuracy"]["high"]
               for s, b in zip(curve["scores"], curve["bands"]) if s["n"])
    assert "Task subjectivity is not measured in this run" in md and 'id="no-judgments"' in html
    assert "### financial_phrasebank (minilm)" in md and "Financial PhraseBank's per-sentence agreement" in md
    assert md.count("| financial_phrasebank | ") >= 2 + 2 + 4  # two Table-1 tables, two gap tables, four diversity rows
    assert html.count("data:image/png;base64,") == 1  # the γ plot
    assert "SmolLM2-135M-Instruct" in md  # provenance names the generator


def test_rerun_recomputes_nothing(study):
    config, runs, _ = study
    outcome = run_study(load_config(config), runs_dir=runs, echo=quiet)
    assert outcome.ran == []
    assert len(outcome.records) == 17 and {r.status for r in outcome.records} == {"cached"}
    session = outcome.records[0].session
    logged = [r for r in read_log(runs / "mini" / "steps.jsonl") if r.session == session]
    assert len(logged) == 17 and all(r.status == "cached" for r in logged)
    # --resume after a finished run also recomputes nothing.
    assert run_study(load_config(config), runs_dir=runs, resume=True, echo=quiet).ran == []


def test_changed_gammas_redo_only_the_stratified_steps(study, tmp_path):
    config, runs, _ = study
    changed = tmp_path / "mini.toml"
    changed.write_text(MINI.replace("gammas = [0.5, 0.75, 1.0]", "gammas = [0.5, 1.0]"), encoding="utf-8")
    outcome = run_study(load_config(changed), runs_dir=runs, echo=quiet)
    assert sorted(r.name for r in outcome.ran) == sorted(f"financial_phrasebank/{c}/stratified-minilm" for c in CONDITIONS)
    # and back: the old thresholds are one step away again, nothing else runs
    assert len(run_study(load_config(config), runs_dir=runs, echo=quiet).ran) == 4


def test_judgments_add_the_ranking_and_llm_kendall_tau(study, tmp_path):
    config, runs, _ = study
    tasks = ["fewrel", "sms_spam", "financial_phrasebank", "tweet_sarcasm"]
    crowd, llm = [], []
    for i, left in enumerate(tasks):
        for right in tasks[i + 1:]:
            for k in range(3):  # TEST DATA: the earlier task wins 2 of 3
                crowd.append(Judgment(left=left, right=right, winner=left if k < 2 else right,
                                      study="test-data", worker=f"test{k}"))
                llm.append(Judgment(left=left, right=right, winner=left if k < 2 else right, study="test-data",
                                    worker="llm:test-model", extra={"source": "llm:test-model"}))
    write_records(tmp_path / "crowd.jsonl", crowd)
    write_records(tmp_path / "llm.jsonl", llm)
    outcome = run_study(load_config(config), runs_dir=runs, judgments=tmp_path / "crowd.jsonl",
                        llm_judgments=[tmp_path / "llm.jsonl"], echo=quiet)
    assert sorted(r.name for r in outcome.ran) == ["_study/ranking-crowd", "_study/ranking-llm_test-model"]
    md = outcome.files.markdown.read_text(encoding="utf-8")
    assert "not measured" not in md
    assert "Bradley–Terry objectivity scores from 18 judgments" in md
    assert "| 1 | fewrel |" in md and "| 4 | tweet_sarcasm |" in md
    assert "Kendall τ between the llm:test-model ranking and the crowd ranking: **1.000**" in md
    # one task with results cannot give a correlation: the report says why instead of inventing one
    assert "need at least 3 tasks with both a score and a gap" in md
    assert outcome.files.html.read_text(encoding="utf-8").count("data:image/png;base64,") == 3


def test_llm_judgments_passed_as_crowd_judgments_are_refused(study, tmp_path):
    config, runs, _ = study
    rows = [Judgment(left="fewrel", right="humor", winner="fewrel", study="test-data", worker="llm:m",
                     extra={"source": "llm:m"})]
    write_records(tmp_path / "llm.jsonl", rows)
    with pytest.raises(ValueError, match="pass them as --llm-judgments"):
        run_study(load_config(config), runs_dir=runs, judgments=tmp_path / "llm.jsonl", echo=quiet)


def test_cli_reports_config_errors_with_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(MINI.replace("epochs = 1", "epochs = -1"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(bad), "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert f"error: {bad}: key 'training.epochs': must be an integer >= 1, got -1" in result.output
    assert not (tmp_path / "runs").exists()


def test_only_task_rejects_a_task_outside_the_study(study):
    config, runs, _ = study
    with pytest.raises(ValueError, match="--only-task ag_news: not in the study's tasks"):
        run_study(load_config(config), runs_dir=runs, only_tasks=["ag_news"], echo=quiet)


def test_crowd_judgments_are_read_from_a_pairwise_study_in_the_database(study, tmp_path):
    """A real pairwise study on the annotation server (SQLite), answered through its JSON API by
    test workers whose answers are TEST DATA, is exported, ranked and shown in the report."""
    from annotation_server.app import create_app

    config, runs, _ = study
    url = f"sqlite:///{tmp_path / 'subjlab.db'}"
    app = create_app({"DATABASE_URL": url, "ADMIN_TOKEN": "t0ken", "AUTO_MIGRATE": True})
    client = app.test_client()
    admin = {"Authorization": "Bearer t0ken"}
    tasks = ["fewrel", "sms_spam", "tweet_sarcasm"]
    assert client.post("/api/v1/studies", json={"name": "objectivity", "kind": "pairwise"}, headers=admin).status_code == 201
    assert client.post("/api/v1/studies/objectivity/items", json={"tasks": tasks}, headers=admin).status_code == 201
    answered = 0
    for w in range(4):
        token = client.post("/api/v1/studies/objectivity/sessions", json={"worker_id": f"test-worker-{w}"}).get_json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            unit = client.get("/api/v1/studies/objectivity/next", headers=auth)
            if unit.status_code == 204:
                break
            body = unit.get_json()
            pair = [body["left"]["task"], body["right"]["task"]]
            winner = min(pair, key=tasks.index)  # TEST DATA: the task listed first wins
            assert client.post(f"/api/v1/assignments/{body['assignment']}", json={"winner": winner}, headers=auth).status_code == 201
            answered += 1
    assert answered >= 6
    outcome = run_study(load_config(config), runs_dir=runs, judgments_study="objectivity", database_url=url, echo=quiet)
    assert [r.name for r in outcome.ran] == ["_study/ranking-crowd"]
    crowd = outcome.report.crowd
    assert crowd.n_judgments == answered and [t.task for t in crowd.tasks] == tasks
    md = outcome.files.markdown.read_text(encoding="utf-8")
    assert f"study 'objectivity' in {url} ({answered} judgments" in md
    with pytest.raises(ValueError, match="study 'nope'"):
        run_study(load_config(config), runs_dir=runs, judgments_study="nope", database_url=url, echo=quiet)


def test_a_synthetic_set_per_seed_trains_each_model_on_its_own_draw_of_texts(tmp_path):
    """[generation] set_per_seed: each training seed gets synthetic sets generated with that seed, its
    models train on them (the train step's key hashes that draw's file), and the report says the
    intervals now cover the randomness of generation."""
    from subjlab.runner.task_steps import train_step

    text = (MINI.replace('name = "mini"', 'name = "draws"\nconditions = ["real", "zero_shot", "small_real_few_shot"]')
            .replace("few_shot_k = 2\n", "few_shot_k = 2\nset_per_seed = true\n")
            .replace("[training]\n", "[training]\nseeds = [5, 6]\n"))
    path = tmp_path / "draws.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.draws() == (5, 6)
    outcome = run_study(config, runs_dir=tmp_path / "runs", echo=quiet)
    log = {r.name: r for r in read_log(outcome.run_dir / "steps.jsonl")}
    # data, agreement, 2 x 2 generate, 2 mixes, 3 conditions x 2 seeds trained, 3 diversity, 3 stratified
    assert len(log) == count_steps(config) == 20
    task = config.tasks[0]
    base = outcome.run_dir / task.name
    test_file = base / "real" / "data" / "test.jsonl"
    sets = {}
    for seed in (5, 6):
        for mode in ("zero_shot", "few_shot"):
            data = read_examples(base / mode / f"generate-s{seed}" / "data.jsonl")
            assert len(data) == 6
            sets[(mode, seed)] = base / mode / f"generate-s{seed}" / "data.jsonl"
        sets[("small_real_few_shot", seed)] = base / "small_real_few_shot" / f"data-s{seed}" / "train.jsonl"
        assert len(read_examples(sets[("small_real_few_shot", seed)])) == 6 + 6
    assert f"{task.name}/zero_shot/generate" not in log and f"{task.name}/small_real_few_shot/data" not in log
    # the two draws are generated with their own seeds: different texts
    assert ({ex.text for ex in read_examples(sets[("zero_shot", 5)])}
            != {ex.text for ex in read_examples(sets[("zero_shot", 6)])})
    for cond in ("zero_shot", "small_real_few_shot"):
        for seed, other in ((5, 6), (6, 5)):
            logged = log[f"{task.name}/{cond}/train-minilm-s{seed}"].key
            own, _ = train_step(config, task, base, cond, "minilm", seed, sets[(cond, seed)], test_file)
            wrong, _ = train_step(config, task, base, cond, "minilm", seed, sets[(cond, other)], test_file)
            assert logged == own.key() != wrong.key()
    cells = [c for c in outcome.report.performance if c.condition == "zero_shot"]
    assert [c.n_seeds for c in cells] == [2]
    md = outcome.files.markdown.read_text(encoding="utf-8")
    assert "Each model of a synthetic column trained on its own generated set" in md
    assert "not the randomness of generation" not in md
    assert "those of the first seed's set (seed 5)" in md
