"""`subjlab judge`: pairwise objectivity judgments by an LLM, with the page text a worker sees."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from generation.judge import JudgeConfig, judge_messages, parse_choice, task_examples
from subjlab.cli import cli
from subjlab.records import read_judgments
from subjlab.tasks import OBJECTIVITY_DEFINITION, get_task


@pytest.mark.parametrize(
    "reply, choice",
    [
        ("A", "A"), ("B.", "B"), ("(A)", "A"), ("**B**", "B"), ("Answer: B", "B"),
        ("Task A is more objective.", "A"), ("I think Task B is more objective.", "B"),
        ("A. Task A is more objective than Task B", "A"), (" The answer is B because ...", "B"),
        ("A or B", None), ("Task A and Task B", None), ("A/B", None), ("a task", None), ("b", None), ("", None),
    ],
)
def test_parse_choice_reads_one_task_or_nothing(reply, choice):
    assert parse_choice(reply) == choice


def test_prompt_shows_what_a_worker_sees(task_data):
    a, b = get_task("fewrel"), get_task("tweet_sarcasm")
    a_ex = task_examples(a, 2, task_data, seed=1)
    b_ex = task_examples(b, 2, task_data, seed=1)
    assert len(a_ex) == 2 and len(b_ex) == 2
    system, user = judge_messages(a, a_ex, b, b_ex)
    text = user.content
    assert text.startswith("Which classification is more objective?")
    assert OBJECTIVITY_DEFINITION in text
    assert f"Task A: {a.title}\n{a.description}" in text and f"Task B: {b.title}\n{b.description}" in text
    for task in (a, b):
        for label, desc in task.label_descriptions.items():
            assert f"- {label}: {desc}" in text
    assert " ".join(a_ex[0].split()[:10]) in text and " ".join(b_ex[1].split()[:10]) in text
    assert "A or B" in system.content


def test_judge_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="per_pair must be at least 1"):
        JudgeConfig(per_pair=0)
    with pytest.raises(ValueError, match="backend must be local or openai"):
        JudgeConfig(backend="hf")


@pytest.mark.slow
def test_judge_with_the_local_model_writes_valid_llm_judgments(tmp_path, task_data):
    out = tmp_path / "llm.jsonl"
    result = CliRunner().invoke(
        cli,
        ["judge", "--tasks", "fewrel,tweet_sarcasm", "--backend", "local", "--per-pair", "2", "--examples", "2",
         "--data", str(task_data), "--no-cache", "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    judgments = read_judgments(out)
    assert "judgments by llm:SmolLM2-135M-Instruct" in result.output
    unparsed = int(result.output.split("(")[1].split(" unparsed")[0])
    assert len(judgments) + unparsed == 2 and judgments
    # both presentation orders are asked, so position bias cancels over pairs
    orders = {(j.left, j.right) for j in judgments}
    assert orders <= {("fewrel", "tweet_sarcasm"), ("tweet_sarcasm", "fewrel")}
    for j in judgments:
        assert j.winner in (j.left, j.right)
        assert j.extra["source"] == j.worker and j.worker.startswith("llm:SmolLM2-135M-Instruct")
        assert j.study == "llm-judge" and parse_choice(j.extra["response"]) in ("A", "B")
        assert j.winner == (j.left if parse_choice(j.extra["response"]) == "A" else j.right)


def test_judge_needs_two_distinct_tasks(tmp_path):
    result = CliRunner().invoke(cli, ["judge", "--tasks", "fewrel", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "at least 2 distinct tasks" in result.output
