"""The typed study configuration and its TOML loader.

A study config names the tasks, how much real and synthetic data to use, how to generate and how to
train, and where crowd judgments or agreement files live. `load_config(path)` returns a frozen
`StudyConfig`; any problem raises `ConfigError` whose message names the file and the dotted key,
e.g. ``configs/x.toml: key 'training.epochs': must be an integer >= 1, got 0``.

Layout (every table optional except `[study]`; defaults in parentheses)::

    [study]
    name = "demo"                       # run folder: <runs-dir>/<name>/ (required)
    tasks = ["ag_news", "sms_spam"]     # registry keys or task files (.toml/.yaml) (required)
    seed = 13                           # (13)
    conditions = ["real", "zero_shot", "few_shot", "small_real_few_shot"]   (all four)
    data_dir = "path"                   # ($SUBJLAB_DATA, else the data bundled with subjlab)
    judgments = "crowd.jsonl"           # crowd pairwise judgments -> ranking + correlation ("")
    judgments_study = "objectivity"     # ... or a pairwise study in the annotation database ("")
    database_url = "sqlite:///x.db"     # that database ($SUBJLAB_DATABASE_URL, else sqlite:///subjlab.db)
    llm_judgments = "llm.jsonl"         # from `subjlab judge` -> Kendall tau vs crowd ("")

    [data]
    train_per_label = 150               # real training examples per label (150)
    test_per_label = 70                 # real test examples per label (70)
    small_real_per_label = 10           # the small real set of small_real_few_shot (10)

    [generation]
    backend = "local"                   # local | openai | openai-batch ("local")
    model = ""                          # "" = the backend's default (packaged SmolLM2 for local)
    base_url = ""                       # OpenAI-compatible endpoint (openai backend)
    per_label = 32                      # synthetic texts per label (32)
    few_shot_k = 3                      # real demonstrations per few-shot prompt (3)
    [generation.options]                # any further GenerationConfig field, by name

    [training]
    backbones = ["minilm"]              # "minilm" = packaged all-MiniLM-L6-v2, or any HF id/path
    epochs = 2                          # (2)
    max_length = 64                     # (64)
    batch_size = 16                     # (16)
    learning_rate = 5e-5                # (5e-5)
    max_steps = 0                       # 0 = no cap (0)
    min_steps = 0                       # raise the epochs of small training sets to reach this (0)
    seeds = [13]                        # one model per seed; scores are averaged ([study.seed])
    [training.options]                  # any further TrainConfig field, by name

    [evaluation]
    gammas = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    diversity = true                    # diversity/similarity of each training set (true)
    bootstrap = 2000                    # resamples behind every 95% interval of the report (2000)
    [evaluation.agreement]              # task = "agreement.jsonl" ({"item", "agreement"} per test id)
    [evaluation.labels]                 # task = "labels.jsonl" (crowd labels per test id -> agreement)

Relative paths are resolved against the config file's folder. A task whose test split carries its
own human annotations needs no agreement file: per-item `ratings` (tweet_sarcasm) or a documented
agreement level (Financial PhraseBank) give a_i (`analysis.data_agreement`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from subjlab.tasks import REGISTRY, TaskSpec, TaskSpecError, get_task

#: The training-set conditions a study can run, in report order.
CONDITIONS: tuple[str, ...] = ("real", "zero_shot", "few_shot", "small_real_few_shot")
#: Human-readable names of the conditions (report column headers).
CONDITION_TITLES: dict[str, str] = {
    "real": "real",
    "zero_shot": "zero-shot",
    "few_shot": "few-shot",
    "small_real_few_shot": "small real + few-shot",
}
#: The backbone alias for the packaged all-MiniLM-L6-v2.
MINILM_ALIAS = "minilm"


class ConfigError(ValueError):
    """A study config is invalid; the message names the file and the dotted key."""

    def __init__(self, source: str | Path, key: str | None, message: str):
        self.source = str(source)
        self.key = key
        where = f"{self.source}: key '{key}'" if key else self.source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class DataSettings:
    """How much real data each task uses (per label), and where the data lives."""

    train_per_label: int = 150
    test_per_label: int = 70
    small_real_per_label: int = 10
    data_dir: Path | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """How synthetic data is generated; `options` are further GenerationConfig fields by name."""

    backend: str = "local"
    model: str = ""
    base_url: str = ""
    per_label: int = 32
    few_shot_k: int = 3
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingSettings:
    """How classifiers are trained; `options` are further TrainConfig fields by name."""

    backbones: tuple[str, ...] = (MINILM_ALIAS,)
    epochs: int = 2
    max_length: int = 64
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_steps: int = 0
    min_steps: int = 0
    seeds: tuple[int, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationSettings:
    """Agreement thresholds, diversity switch and per-task agreement sources (paths)."""

    gammas: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    diversity: bool = True
    bootstrap: int = 2000
    agreement: Mapping[str, Path] = field(default_factory=dict)
    labels: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyConfig:
    """A whole study. `path` is the file it came from; `task_refs` the task entries as written."""

    name: str
    path: Path
    tasks: tuple[TaskSpec, ...]
    task_refs: tuple[str, ...]
    seed: int = 13
    conditions: tuple[str, ...] = CONDITIONS
    judgments: Path | None = None
    judgments_study: str = ""
    database_url: str = ""
    llm_judgments: Path | None = None
    data: DataSettings = field(default_factory=DataSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)

    def task(self, name: str) -> TaskSpec:
        """Return the task with this name; raise ValueError naming the config when absent."""
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise ValueError(f"{self.path}: study has no task {name!r}; tasks: {[t.name for t in self.tasks]}")

    def train_seeds(self) -> tuple[int, ...]:
        """Return the training seeds ([training] seeds, else the study seed)."""
        return self.training.seeds or (self.seed,)


_ALLOWED: dict[str, tuple[str, ...]] = {
    "": ("study", "data", "generation", "training", "evaluation"),
    "study": ("name", "tasks", "seed", "conditions", "data_dir", "judgments", "judgments_study", "database_url",
              "llm_judgments"),
    "data": ("train_per_label", "test_per_label", "small_real_per_label"),
    "generation": ("backend", "model", "base_url", "per_label", "few_shot_k", "options"),
    "training": (
        "backbones", "epochs", "max_length", "batch_size", "learning_rate", "max_steps", "min_steps", "seeds",
        "options",
    ),
    "evaluation": ("gammas", "diversity", "bootstrap", "agreement", "labels"),
}


class _Reader:
    """Typed access to one table of the parsed TOML, with errors naming file and dotted key."""

    def __init__(self, source: Path, table: Mapping[str, Any], prefix: str):
        self.source = source
        self.table = table
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), message)

    def check_keys(self) -> None:
        allowed = _ALLOWED[self.prefix]
        for name in self.table:
            if name not in allowed:
                raise self.error(name, f"unknown key; allowed here: {', '.join(allowed)}")

    def sub(self, name: str) -> "_Reader":
        value = self.table.get(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"must be a table, got {type(value).__name__}")
        return _Reader(self.source, value, self.key(name))

    def string(self, name: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        if name not in self.table:
            if default is None:
                raise self.error(name, "required")
            return default
        value = self.table[name]
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {type(value).__name__} {value!r}")
        if choices and value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {type(value).__name__} {value!r}")
        if value < minimum:
            raise self.error(name, f"must be an integer >= {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number, got {type(value).__name__} {value!r}")
        if not low <= value <= high:
            raise self.error(name, f"must be in [{low:g}, {high:g}], got {value}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.table.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def strings(self, name: str, default: tuple[str, ...] | None = None) -> tuple[str, ...]:
        if name not in self.table:
            if default is None:
                raise self.error(name, "required")
            return default
        value = self.table[name]
        if not isinstance(value, list) or not value:
            raise self.error(name, "must be a non-empty list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.error(f"{name}[{i}]", f"must be a non-empty string, got {item!r}")
        if len(set(value)) != len(value):
            raise self.error(name, f"has duplicates: {value}")
        return tuple(value)

    def path(self, name: str) -> Path | None:
        value = self.string(name, "")
        return _resolve(self.source, value) if value else None

    def options(self, name: str) -> dict[str, Any]:
        value = self.table.get(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"must be a table, got {type(value).__name__}")
        return dict(value)

    def path_table(self, name: str, tasks: tuple[str, ...]) -> dict[str, Path]:
        value = self.table.get(name, {})
        if not isinstance(value, Mapping):
            raise self.error(name, f"must be a table of task = \"file\", got {type(value).__name__}")
        out: dict[str, Path] = {}
        for task, file in value.items():
            key = f"{name}.{task}"
            if task not in tasks:
                raise self.error(key, f"task {task!r} is not in study.tasks {list(tasks)}")
            if not isinstance(file, str) or not file:
                raise self.error(key, f"must be a file path string, got {file!r}")
            path = _resolve(self.source, file)
            if not path.is_file():
                raise self.error(key, f"no such file: {path}")
            out[task] = path
        return out


#: GenerationConfig / TrainConfig fields the runner sets itself (from first-class keys or per step);
#: an `options` table may not set them.
_GENERATION_OWN = {"task": "study.tasks", "mode": "study.conditions", "per_label": "generation.per_label",
                   "backend": "generation.backend", "model": "generation.model", "base_url": "generation.base_url",
                   "shots": "generation.few_shot_k", "seed": "study.seed", "data_dir": "study.data_dir",
                   "labels": "the task's labels", "api_key": "the OPENAI_API_KEY environment variable"}
_TRAINING_OWN = {"task": "study.tasks", "labels": "the task's labels", "model": "training.backbones",
                 "epochs": "training.epochs", "batch_size": "training.batch_size", "lr": "training.learning_rate",
                 "max_length": "training.max_length", "seed": "training.seeds", "max_steps": "training.max_steps",
                 "out_dir": "the run folder", "provenance": "the runner"}


def _check_option_names(source: Path, key: str, options: Mapping[str, Any], module: str, cls_name: str,
                        own: Mapping[str, str]) -> None:
    """Raise ConfigError when an options key is not a field of the named config dataclass, or is one
    the runner sets itself."""
    import dataclasses
    import importlib

    if not options:
        return
    cls = getattr(importlib.import_module(module), cls_name)
    names = [f.name for f in dataclasses.fields(cls)]
    for name in options:
        if name in own:
            raise ConfigError(source, f"{key}.{name}", f"is set by the runner; use {own[name]} instead")
        if name not in names:
            allowed = ", ".join(n for n in names if n not in own)
            raise ConfigError(source, f"{key}.{name}", f"not a {cls_name} field; allowed: {allowed}")


def _resolve(source: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (source.parent / path)


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study config (TOML); return a StudyConfig or raise ConfigError."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(source, None, "no such config file")
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(source, None, f"not UTF-8 text: {exc}") from exc
    return config_from_mapping(data, source)


def config_from_mapping(data: Mapping[str, Any], source: Path) -> StudyConfig:
    """Validate a parsed config mapping (as from TOML); `source` names it in errors."""
    root = _Reader(source, data, "")
    root.check_keys()
    if "study" not in data:
        raise ConfigError(source, "study", "required table is missing")
    study = root.sub("study")
    study.check_keys()
    name = study.string("name")
    if not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
        raise study.error("name", f"must be a plain folder name (no slashes, not hidden), got {name!r}")
    task_refs = study.strings("tasks")
    tasks: list[TaskSpec] = []
    for i, ref in enumerate(task_refs):
        try:
            if ref in REGISTRY:
                tasks.append(get_task(ref))
            else:
                tasks.append(get_task(str(_resolve(source, ref))))
        except TaskSpecError as exc:
            raise study.error(f"tasks[{i}]", str(exc)) from None
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise study.error("tasks", f"names the same task twice: {names}")
    task_names = tuple(names)
    conditions = study.strings("conditions", CONDITIONS)
    for i, cond in enumerate(conditions):
        if cond not in CONDITIONS:
            raise study.error(f"conditions[{i}]", f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}")
    conditions = tuple(c for c in CONDITIONS if c in conditions)  # report order
    data_dir = study.path("data_dir")
    if data_dir is not None and not data_dir.is_dir():
        raise study.error("data_dir", f"no such folder: {data_dir}")
    judgments = study.path("judgments")
    llm_judgments = study.path("llm_judgments")
    for key, p in (("judgments", judgments), ("llm_judgments", llm_judgments)):
        if p is not None and not p.is_file():
            raise study.error(key, f"no such file: {p}")
    judgments_study = study.string("judgments_study", "")
    if judgments_study and judgments is not None:
        raise study.error("judgments_study", "give either study.judgments (a file) or study.judgments_study, not both")
    database_url = study.string("database_url", "")

    d = root.sub("data")
    d.check_keys()
    data_settings = DataSettings(
        train_per_label=d.integer("train_per_label", 150, 1),
        test_per_label=d.integer("test_per_label", 70, 1),
        small_real_per_label=d.integer("small_real_per_label", 10, 1),
        data_dir=data_dir,
    )
    if data_settings.small_real_per_label > data_settings.train_per_label:
        raise d.error("small_real_per_label", "must not exceed data.train_per_label (the small set is drawn from it)")

    from generation.backends import BACKENDS  # the generation package's list (local, openai, ...)

    g = root.sub("generation")
    g.check_keys()
    generation = GenerationSettings(
        backend=g.string("backend", "local", tuple(BACKENDS)),
        model=g.string("model", ""),
        base_url=g.string("base_url", ""),
        per_label=g.integer("per_label", 32, 1),
        few_shot_k=g.integer("few_shot_k", 3, 1),
        options=g.options("options"),
    )

    t = root.sub("training")
    t.check_keys()
    seeds_raw = t.table.get("seeds", [])
    if not isinstance(seeds_raw, list) or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds_raw):
        raise t.error("seeds", f"must be a list of integers, got {seeds_raw!r}")
    training = TrainingSettings(
        backbones=t.strings("backbones", (MINILM_ALIAS,)),
        epochs=t.integer("epochs", 2, 1),
        max_length=t.integer("max_length", 64, 8),
        batch_size=t.integer("batch_size", 16, 1),
        learning_rate=t.number("learning_rate", 5e-5, 1e-8, 1.0),
        max_steps=t.integer("max_steps", 0, 0),
        min_steps=t.integer("min_steps", 0, 0),
        seeds=tuple(dict.fromkeys(seeds_raw)),
        options=t.options("options"),
    )

    e = root.sub("evaluation")
    e.check_keys()
    gammas_raw = e.table.get("gammas", list(EvaluationSettings.gammas))
    if not isinstance(gammas_raw, list) or not gammas_raw:
        raise e.error("gammas", "must be a non-empty list of numbers in [0, 1]")
    for i, gam in enumerate(gammas_raw):
        if isinstance(gam, bool) or not isinstance(gam, (int, float)) or not 0.0 <= gam <= 1.0:
            raise e.error(f"gammas[{i}]", f"must be a number in [0, 1], got {gam!r}")
    evaluation = EvaluationSettings(
        gammas=tuple(sorted({float(x) for x in gammas_raw})),
        diversity=e.boolean("diversity", True),
        bootstrap=e.integer("bootstrap", 2000, 200),
        agreement=e.path_table("agreement", task_names),
        labels=e.path_table("labels", task_names),
    )
    both = sorted(set(evaluation.agreement) & set(evaluation.labels))
    if both:
        raise e.error("labels", f"tasks {both} have both an agreement file and a labels file; give one")

    _check_option_names(source, "generation.options", generation.options, "generation.config", "GenerationConfig",
                        _GENERATION_OWN)
    _check_option_names(source, "training.options", training.options, "training.config", "TrainConfig", _TRAINING_OWN)
    return StudyConfig(
        name=name,
        path=source,
        tasks=tuple(tasks),
        task_refs=task_refs,
        seed=study.integer("seed", 13, 0),
        conditions=conditions,
        judgments=judgments,
        judgments_study=judgments_study,
        database_url=database_url,
        llm_judgments=llm_judgments,
        data=data_settings,
        generation=generation,
        training=training,
        evaluation=evaluation,
    )
