"""Value types of the study config (`subjlab.runner.config`): strict scalars (TOML already gives the
right types, so "2" is not a count), lists checked item by item so that errors name the index, paths
resolved against the config file's folder, and `Problem`, a complaint about a key below the value a
validator checks; and the names an `options` table may not set (`check_option_names`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict, ValidationInfo


class Problem(ValueError):
    """A validator's complaint about a key below the value it validates; `sub` is the rest of its path
    (names and list indices), added to the location pydantic reports."""

    def __init__(self, message: str, *sub: str | int):
        super().__init__(message)
        self.sub = sub


def at_least(minimum: int):
    def check(value: int) -> int:
        if value < minimum:
            raise ValueError(f"must be an integer >= {minimum}, got {value}")
        return value

    return Annotated[int, Strict(), AfterValidator(check)]


def in_range(low: float, high: float):
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be in [{low:g}, {high:g}], got {value}")
        return float(value)

    return Annotated[float, Strict(), AfterValidator(check)]


def _names(value: Any) -> tuple[str, ...]:
    """A non-empty list of distinct non-empty strings."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise Problem(f"must be a non-empty string, got {item!r}", i)
    if len(set(value)) != len(value):
        raise ValueError(f"has duplicates: {list(value)}")
    return tuple(value)


def _seeds(value: Any) -> tuple[int, ...]:
    """A list of integer seeds, duplicates dropped (order kept)."""
    if not isinstance(value, (list, tuple)) or any(isinstance(s, bool) or not isinstance(s, int) for s in value):
        raise ValueError(f"must be a list of integers, got {value!r}")
    return tuple(dict.fromkeys(value))


def _gammas(value: Any) -> tuple[float, ...]:
    """A non-empty list of agreement thresholds in [0, 1], sorted, duplicates dropped."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("must be a non-empty list of numbers in [0, 1]")
    for i, gamma in enumerate(value):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma <= 1.0:
            raise Problem(f"must be a number in [0, 1], got {gamma!r}", i)
    return tuple(sorted({float(x) for x in value}))


Count = at_least(1)
NonNegative = at_least(0)
Text = Annotated[str, Strict()]
Flag = Annotated[bool, Strict()]
Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
Seeds = Annotated[tuple[int, ...], BeforeValidator(_seeds)]
Gammas = Annotated[tuple[float, ...], BeforeValidator(_gammas)]


def source_of(info: ValidationInfo) -> Path:
    if not info.context or "source" not in info.context:
        raise RuntimeError("a study config is validated with context={'source': path} (use load_config)")
    return info.context["source"]


def resolve(source: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (source.parent / path)


def optional_path(value: str, info: ValidationInfo, must_be: str) -> Path | None:
    """Resolve a path setting ("" = unset) against the config's folder; check it is a file or folder."""
    if not value:
        return None
    path = resolve(source_of(info), value)
    if must_be == "file" and not path.is_file():
        raise ValueError(f"no such file: {path}")
    if must_be == "folder" and not path.is_dir():
        raise ValueError(f"no such folder: {path}")
    return path


class Table(BaseModel):
    """One table of the config file: frozen, unknown keys refused, no type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: GenerationConfig / TrainConfig fields the runner sets itself (from first-class keys or per step);
#: an `options` table may not set them.
GENERATION_OWN = {"task": "study.tasks", "mode": "study.conditions", "per_label": "generation.per_label",
                   "backend": "generation.backend", "model": "generation.model", "base_url": "generation.base_url",
                   "shots": "generation.few_shot_k", "seed": "study.seed", "data_dir": "study.data_dir",
                   "labels": "the task's labels", "api_key": "the OPENAI_API_KEY environment variable"}
TRAINING_OWN = {"task": "study.tasks", "labels": "the task's labels", "model": "training.backbones",
                 "epochs": "training.epochs", "batch_size": "training.batch_size", "lr": "training.learning_rate",
                 "max_length": "training.max_length", "seed": "training.seeds", "max_steps": "training.max_steps",
                 "out_dir": "the run folder", "provenance": "the runner"}


def check_option_names(options: dict[str, Any], module: str, cls_name: str, own: Mapping[str, str]) -> dict[str, Any]:
    """Refuse an options key that is not a field of the named config dataclass, or one the runner
    sets itself. (Their values are checked by `pipeline.preflight`, which builds every config.)"""
    import dataclasses
    import importlib

    if not options:
        return options
    names = [f.name for f in dataclasses.fields(getattr(importlib.import_module(module), cls_name))]
    for name in options:
        if name in own:
            raise Problem(f"is set by the runner; use {own[name]} instead", name)
        if name not in names:
            raise Problem(f"not a {cls_name} field; allowed: {', '.join(n for n in names if n not in own)}", name)
    return options
