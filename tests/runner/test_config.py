"""The study config loader: the packaged configs validate; every error names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from subjlab.runner.config import CONDITIONS, ConfigError, load_config
from subjlab.runner.demo import demo_config_path, paper_config_path

MINIMAL = """
[study]
name = "mini"
tasks = ["sms_spam"]
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_packaged_demo_config_validates_with_four_tasks_and_the_local_backend():
    from subjlab.runner.pipeline import preflight

    config = load_config(demo_config_path())
    assert config.name == "demo"
    assert [t.name for t in config.tasks] == ["sms_spam", "financial_phrasebank", "humor", "tweet_sarcasm"]
    assert config.generation.backend == "local"
    assert config.training.backbones == ("minilm",)
    assert config.conditions == CONDITIONS
    assert config.generation.per_label == 8 and config.data.train_per_label == 80
    assert config.generation.few_shot_k == 2 and config.generation.options["max_tokens"] == 40
    assert config.training.min_steps == 12
    assert config.training.max_length == 64
    # sized for the report's intervals: every bundled test text, two seeds
    assert config.data.test_per_label == 200 and config.train_seeds() == (13, 14)
    preflight(config)  # every GenerationConfig / TrainConfig it implies is valid


def test_packaged_paper_config_is_the_papers_full_setup():
    config = load_config(paper_config_path())
    assert len(config.tasks) == 10
    assert config.generation.backend == "openai"
    assert config.generation.model == "gpt-3.5-turbo"
    assert config.generation.per_label == 3000
    assert config.training.backbones == ("bert-base-uncased", "roberta-base")
    from subjlab.runner.pipeline import preflight

    preflight(config)


def test_minimal_config_gets_documented_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.seed == 13
    assert config.train_seeds() == (13,)
    assert config.data.train_per_label == 150
    assert config.evaluation.gammas == (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert config.evaluation.bootstrap == 2000
    assert config.judgments is None


@pytest.mark.parametrize(
    "text, key, reason",
    [
        ("[study]\ntasks = ['sms_spam']\n", "study.name", "required"),
        ("[study]\nname = 'x'\ntasks = ['no_such_task']\n", "study.tasks[0]", "unknown task"),
        (MINIMAL + "[training]\nepochs = 0\n", "training.epochs", ">= 1"),
        (MINIMAL + "[training]\nepochs = 'two'\n", "training.epochs", "must be an integer"),
        (MINIMAL + "[training]\nepoch = 2\n", "training.epoch", "unknown key"),
        (MINIMAL + "[generation]\nbackend = 'hf'\n", "generation.backend", "must be one of local, openai"),
        (MINIMAL + "[evaluation]\ngammas = [0.5, 1.5]\n", "evaluation.gammas[1]", "[0, 1]"),
        (MINIMAL + "[evaluation]\nbootstrap = 50\n", "evaluation.bootstrap", ">= 200"),
        (MINIMAL + "[data]\ntrain_per_label = 5\nsmall_real_per_label = 9\n", "data.small_real_per_label", "must not exceed"),
        ("[study]\nname = 'x'\ntasks = ['sms_spam']\nconditions = ['real', 'gpt']\n", "study.conditions[1]", "unknown condition"),
        ("[study]\nname = 'x'\ntasks = ['sms_spam']\njudgments = 'missing.jsonl'\n", "study.judgments", "no such file"),
        (MINIMAL + "[evaluation.agreement]\nag_news = 'a.jsonl'\n", "evaluation.agreement.ag_news", "not in study.tasks"),
        (MINIMAL + "[surprise]\nx = 1\n", "surprise", "unknown key"),
        ("[study]\nname = '../up'\ntasks = ['sms_spam']\n", "study.name", "plain folder name"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key '{key}'"), message
    assert reason in message


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path, "[study\nname=")
    with pytest.raises(ConfigError, match=f"^{path}: not valid TOML"):
        load_config(path)


def test_bad_task_file_error_names_the_config_key_and_the_task_file(tmp_path):
    task_file = write(tmp_path, "name = 'mine'\ntitle = 'Mine'\n", name="mine.toml")
    path = write(tmp_path, "[study]\nname = 'x'\ntasks = ['mine.toml']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "key 'study.tasks[0]'" in str(info.value)
    assert str(task_file) in str(info.value)


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    judgments = tmp_path / "sub" / "j.jsonl"
    judgments.write_text('{"left": "a", "right": "b", "winner": "a"}\n', encoding="utf-8")
    path = write(tmp_path / "sub", MINIMAL.replace("[study]\n", "[study]\njudgments = 'j.jsonl'\n"))
    assert load_config(path).judgments == judgments


@pytest.mark.parametrize(
    "table, key, reason",
    [
        ("[training.options]\nepochs = 3\n", "training.options.epochs", "use training.epochs instead"),
        ("[training.options]\nwarmup = 0.1\n", "training.options.warmup", "not a TrainConfig field"),
        ("[generation.options]\nshots = 2\n", "generation.options.shots", "use generation.few_shot_k instead"),
        ("[generation.options]\ntemp = 0.2\n", "generation.options.temp", "not a GenerationConfig field"),
    ],
)
def test_options_must_be_fields_the_runner_does_not_set_itself(tmp_path, table, key, reason):
    path = write(tmp_path, MINIMAL + table)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: key '{key}'") and reason in str(info.value)


def test_bad_option_value_is_caught_before_any_step_runs(tmp_path):
    from subjlab.runner.pipeline import preflight

    path = write(tmp_path, MINIMAL + "[training.options]\nwarmup_ratio = 2.0\n")
    with pytest.raises(ConfigError, match=f"^{path}: key 'training': task sms_spam, backbone minilm: warmup_ratio"):
        preflight(load_config(path))


def test_judgments_file_and_study_are_exclusive(tmp_path):
    (tmp_path / "j.jsonl").write_text('{"left": "a", "right": "b", "winner": "a"}\n', encoding="utf-8")
    path = write(tmp_path, MINIMAL.replace("[study]\n", "[study]\njudgments = 'j.jsonl'\njudgments_study = 'obj'\n"))
    with pytest.raises(ConfigError, match="key 'study.judgments_study': give either"):
        load_config(path)


def test_min_steps_raises_the_epochs_of_small_training_sets_only(tmp_path):
    from training.config import TrainConfig

    from subjlab.runner.task_steps import train_config

    config = load_config(write(tmp_path, MINIMAL + "[training]\nepochs = 2\nbatch_size = 16\nmin_steps = 20\n"))
    task = config.tasks[0]
    # 24 texts: 3 held out for validation, 21 left = 2 batches per epoch -> 10 epochs for 20 steps
    assert train_config(TrainConfig, config, task, "minilm", 1, n_train=24).epochs == 10.0
    assert train_config(TrainConfig, config, task, "minilm", 1, n_train=1000).epochs == 2.0
    assert train_config(TrainConfig, config, task, "minilm", 1).epochs == 2.0


def test_task_wording_keys_generation_but_not_the_real_data(tmp_path):
    import dataclasses

    from subjlab.runner.task_steps import data_step, generate_step

    config = load_config(write(tmp_path, MINIMAL))
    task = config.tasks[0]
    reworded = dataclasses.replace(task, description=task.description + " Read carefully.")
    base = tmp_path / "runs"
    assert data_step(config, task, base).key() == data_step(config, reworded, base).key()
    assert generate_step(config, task, base, "zero_shot", None)[0].key() != \
        generate_step(config, reworded, base, "zero_shot", None)[0].key()


def test_every_problem_of_a_config_is_named_on_its_own_line(tmp_path):
    path = write(tmp_path, MINIMAL + "[training]\nepochs = 0\nbatch_size = 'a'\n[data]\nfoo = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines == [
        f"{path}: key 'data.foo': unknown key; allowed here: train_per_label, test_per_label, small_real_per_label",
        f"{path}: key 'training.epochs': must be an integer >= 1, got 0",
        f"{path}: key 'training.batch_size': must be an integer, got str 'a'",
    ]
    assert info.value.key == "data.foo"


def test_snapshot_holds_every_setting_with_resolved_paths_and_task_names(tmp_path):
    (tmp_path / "j.jsonl").write_text('{"left": "a", "right": "b", "winner": "a"}\n', encoding="utf-8")
    path = write(tmp_path, MINIMAL.replace("[study]\n", "[study]\njudgments = 'j.jsonl'\n")
                 + "[training]\nseeds = [3, 3, 4]\n[generation.options]\nmax_tokens = 40\n")
    snap = load_config(path).snapshot()
    assert list(snap) == ["name", "path", "tasks", "task_refs", "seed", "conditions", "judgments", "judgments_study",
                          "database_url", "llm_judgments", "data", "generation", "training", "evaluation"]
    assert snap["tasks"] == ["sms_spam"] and snap["judgments"] == tmp_path / "j.jsonl" and snap["path"] == path
    assert snap["data"] == {"train_per_label": 150, "test_per_label": 70, "small_real_per_label": 10, "data_dir": None}
    assert snap["training"]["seeds"] == (3, 4) and snap["generation"]["options"] == {"max_tokens": 40}
    assert list(snap["evaluation"]) == ["gammas", "diversity", "bootstrap", "agreement", "labels"]
