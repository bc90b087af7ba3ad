"""The typed study configuration and its TOML loader: one pydantic model per table of the file.

A study config names the tasks, how much real and synthetic data to use, how to generate and how to
train, and where crowd judgments or agreement files live. `load_config(path)` returns a frozen
`StudyConfig`; unknown keys are refused, and any problem raises `ConfigError` whose message names
the file and the dotted key, e.g. ``configs/x.toml: key 'training.epochs': must be an integer >= 1,
got 0`` (one line per problem when there are several).

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
    set_per_seed = false                # a synthetic set per training seed, generated with that seed,
                                        # so the intervals cover the randomness of generation (false)
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

Relative paths are resolved against the config file's folder (the validation context carries it).
A task whose test split carries its own human annotations needs no agreement file: per-item
`ratings` (tweet_sarcasm) or a documented agreement level (Financial PhraseBank) give a_i
(`analysis.data_agreement`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from subjlab.runner.config_values import (
    GENERATION_OWN,
    TRAINING_OWN,
    Count,
    Flag,
    Gammas,
    Names,
    NonNegative,
    Problem,
    Seeds,
    Table,
    Text,
    at_least,
    check_option_names,
    in_range,
    optional_path,
    resolve,
    source_of,
)
from subjlab.tasks import REGISTRY, TaskSpec, TaskSpecError, get_task

#: The training-set conditions a study can run, in report order.
CONDITIONS: tuple[str, ...] = ("real", "zero_shot", "few_shot", "small_real_few_shot")
#: The backbone alias for the packaged all-MiniLM-L6-v2.
MINILM_ALIAS = "minilm"


class ConfigError(ValueError):
    """A study config is invalid; the message names the file and the dotted key."""

    def __init__(self, source: str | Path, key: str | None, message: str):
        self.source = str(source)
        self.key = key
        where = f"{self.source}: key '{key}'" if key else self.source
        super().__init__(f"{where}: {message}")


# ----------------------------------------------------------------------------------------------
# The tables


class StudySettings(Table):
    """[study]: the name, the tasks (as written; `specs` the resolved TaskSpecs) and where
    judgments come from."""

    name: Text
    tasks: Names
    seed: NonNegative = 13
    conditions: Names = CONDITIONS
    data_dir: Text = ""
    judgments: Text = ""
    judgments_study: Text = ""
    database_url: Text = ""
    llm_judgments: Text = ""
    _specs: tuple[TaskSpec, ...] = PrivateAttr(default=())
    _paths: dict[str, Path | None] = PrivateAttr(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _plain_folder_name(cls, name: str) -> str:
        if not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
            raise ValueError(f"must be a plain folder name (no slashes, not hidden), got {name!r}")
        return name

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, conditions: tuple[str, ...]) -> tuple[str, ...]:
        for i, cond in enumerate(conditions):
            if cond not in CONDITIONS:
                raise Problem(f"unknown condition {cond!r}; known: {', '.join(CONDITIONS)}", i)
        return tuple(c for c in CONDITIONS if c in conditions)  # report order

    @model_validator(mode="after")
    def _resolve_tasks_and_paths(self, info: ValidationInfo) -> "StudySettings":
        source = source_of(info)
        specs: list[TaskSpec] = []
        for i, ref in enumerate(self.tasks):
            try:
                specs.append(get_task(ref if ref in REGISTRY else str(resolve(source, ref))))
            except TaskSpecError as exc:
                raise Problem(str(exc), "tasks", i) from None
        names = [t.name for t in specs]
        if len(set(names)) != len(names):
            raise Problem(f"names the same task twice: {names}", "tasks")
        paths: dict[str, Path | None] = {}
        for key, must_be in (("data_dir", "folder"), ("judgments", "file"), ("llm_judgments", "file")):
            try:
                paths[key] = optional_path(getattr(self, key), info, must_be)
            except ValueError as exc:
                raise Problem(str(exc), key) from None
        if self.judgments_study and paths["judgments"] is not None:
            raise Problem("give either study.judgments (a file) or study.judgments_study, not both", "judgments_study")
        self._specs = tuple(specs)
        self._paths = paths
        return self


class DataSettings(Table):
    """[data]: how much real data each task uses (per label)."""

    train_per_label: Count = 150
    test_per_label: Count = 70
    small_real_per_label: Count = 10

    @model_validator(mode="after")
    def _small_set_fits(self) -> "DataSettings":
        if self.small_real_per_label > self.train_per_label:
            raise Problem("must not exceed data.train_per_label (the small set is drawn from it)", "small_real_per_label")
        return self


class GenerationSettings(Table):
    """[generation]: how synthetic data is generated; `options` are further GenerationConfig fields."""

    backend: Text = "local"
    model: Text = ""
    base_url: Text = ""
    per_label: Count = 32
    few_shot_k: Count = 3
    #: One synthetic set per training seed, generated with that seed (each model of a synthetic condition
    #: then trains on its own draw of texts, and the seed spread pooled into every interval includes the
    #: spread between draws); false: one set per task and mode, generated with the study seed.
    set_per_seed: Flag = False
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, backend: str) -> str:
        from generation.backends import BACKENDS  # the generation package's list (local, openai, ...)

        if backend not in BACKENDS:
            raise ValueError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
        return backend

    @field_validator("options")
    @classmethod
    def _generation_fields(cls, options: dict[str, Any]) -> dict[str, Any]:
        return check_option_names(options, "generation.config", "GenerationConfig", GENERATION_OWN)


class TrainingSettings(Table):
    """[training]: how classifiers are trained; `options` are further TrainConfig fields."""

    backbones: Names = (MINILM_ALIAS,)
    epochs: Count = 2
    max_length: at_least(8) = 64
    batch_size: Count = 16
    learning_rate: in_range(1e-8, 1.0) = 5e-5
    max_steps: NonNegative = 0
    min_steps: NonNegative = 0
    seeds: Seeds = ()
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _training_fields(cls, options: dict[str, Any]) -> dict[str, Any]:
        return check_option_names(options, "training.config", "TrainConfig", TRAINING_OWN)


class EvaluationSettings(Table):
    """[evaluation]: agreement thresholds, the bootstrap size, the diversity switch and per-task
    agreement sources (resolved paths; the whole config checks their tasks and files)."""

    gammas: Gammas = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    diversity: Flag = True
    bootstrap: at_least(200) = 2000
    agreement: dict[str, Path] = Field(default_factory=dict)
    labels: dict[str, Path] = Field(default_factory=dict)

    @field_validator("agreement", "labels", mode="before")
    @classmethod
    def _files_per_task(cls, value: Any, info: ValidationInfo) -> dict[str, Path]:
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a table of task = \"file\", got {type(value).__name__}")
        out: dict[str, Path] = {}
        for task, file in value.items():
            if not isinstance(file, str) or not file:
                raise Problem(f"must be a file path string, got {file!r}", task)
            out[task] = resolve(source_of(info), file)  # the study checks the task, then the file
        return out

    @model_validator(mode="after")
    def _one_source_per_task(self) -> "EvaluationSettings":
        both = sorted(set(self.agreement) & set(self.labels))
        if both:
            raise Problem(f"tasks {both} have both an agreement file and a labels file; give one", "labels")
        return self


# ----------------------------------------------------------------------------------------------
# The whole file


class StudyConfig(Table):
    """A whole study, as the file has it (one model per table), with the flat view the runner uses:
    `name`, `tasks` (TaskSpecs), `task_refs` (as written), `seed`, `conditions`, the resolved paths,
    and `path`, the file it came from."""

    study: StudySettings
    data: DataSettings = Field(default_factory=DataSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    _path: Path = PrivateAttr()

    @model_validator(mode="after")
    def _tables_agree(self, info: ValidationInfo) -> "StudyConfig":
        tasks = [t.name for t in self.study._specs]
        for table in ("agreement", "labels"):
            for task in getattr(self.evaluation, table):
                if task not in tasks:
                    raise Problem(f"task {task!r} is not in study.tasks {tasks}", "evaluation", table, task)
                if not getattr(self.evaluation, table)[task].is_file():
                    raise Problem(f"no such file: {getattr(self.evaluation, table)[task]}", "evaluation", table, task)
        self._path = source_of(info)
        return self

    # The flat view -------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return self.study._specs

    @property
    def task_refs(self) -> tuple[str, ...]:
        return self.study.tasks

    @property
    def seed(self) -> int:
        return self.study.seed

    @property
    def conditions(self) -> tuple[str, ...]:
        return self.study.conditions

    @property
    def data_dir(self) -> Path | None:
        return self.study._paths["data_dir"]

    @property
    def judgments(self) -> Path | None:
        return self.study._paths["judgments"]

    @property
    def llm_judgments(self) -> Path | None:
        return self.study._paths["llm_judgments"]

    @property
    def judgments_study(self) -> str:
        return self.study.judgments_study

    @property
    def database_url(self) -> str:
        return self.study.database_url

    def task(self, name: str) -> TaskSpec:
        """Return the task with this name; raise ValueError naming the config when absent."""
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise ValueError(f"{self.path}: study has no task {name!r}; tasks: {[t.name for t in self.tasks]}")

    def train_seeds(self) -> tuple[int, ...]:
        """Return the training seeds ([training] seeds, else the study seed)."""
        return self.training.seeds or (self.seed,)

    def draws(self) -> tuple[int | None, ...]:
        """Return the synthetic sets per task and mode, by the seed each is generated with: the training
        seeds with [generation] set_per_seed, else one set, `None` (generated with the study seed)."""
        return self.train_seeds() if self.generation.set_per_seed else (None,)

    def snapshot(self) -> dict[str, Any]:
        """Return the settings as the run folder's study.json has them (paths resolved, tasks by name)."""
        return {
            "name": self.name, "path": self.path, "tasks": [t.name for t in self.tasks], "task_refs": self.task_refs,
            "seed": self.seed, "conditions": self.conditions, "judgments": self.judgments,
            "judgments_study": self.judgments_study, "database_url": self.database_url,
            "llm_judgments": self.llm_judgments,
            "data": {**self.data.model_dump(), "data_dir": self.data_dir},
            "generation": self.generation.model_dump(), "training": self.training.model_dump(),
            "evaluation": self.evaluation.model_dump(),
        }


# ----------------------------------------------------------------------------------------------
# Loading


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
    try:
        return StudyConfig.model_validate(data, context={"source": Path(source)})
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors(include_url=False)]
        key, message = problems[0]
        first = ConfigError(source, key, message)
        if len(problems) == 1:
            raise first from None
        more = "".join(f"\n{ConfigError(source, k, m)}" for k, m in problems[1:])
        raise ConfigError(source, key, message + more) from None


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Return (dotted key, message) for one pydantic error, in the words of the config's reader."""
    loc = list(error["loc"])
    kind, value = error["type"], error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Problem):
        loc += list(cause.sub)
    key = "".join(f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
                  for i, part in enumerate(loc)) or None
    if isinstance(cause, ValueError):
        message = str(cause)
    elif kind == "missing":
        message = "required table is missing" if loc == ["study"] else "required"
    elif kind == "extra_forbidden":
        message = f"unknown key; allowed here: {', '.join(_table_at(loc[:-1]).model_fields)}"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"must be an integer, got {type(value).__name__} {value!r}"
    elif kind in ("float_type", "float_parsing"):
        message = f"must be a number, got {type(value).__name__} {value!r}"
    elif kind in ("string_type",):
        message = f"must be a string, got {type(value).__name__} {value!r}"
    elif kind in ("bool_type", "bool_parsing"):
        message = f"must be true or false, got {value!r}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"must be a table, got {type(value).__name__}"
    else:
        message = error["msg"]
    return key, message


def _table_at(loc: list[Any]) -> type[BaseModel]:
    """Return the model class of the table at `loc` (a path of table names from the file's root)."""
    model: type[BaseModel] = StudyConfig
    for part in loc:
        model = model.model_fields[part].annotation
    return model
