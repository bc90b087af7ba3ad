"""Reading crowd data straight from a study in the annotation database, with flagged workers left out.

Shared by `subjlab agreement --study`, `subjlab rank --study` and `subjlab mturk review`:

- `STUDY_SOURCE_OPTIONS`: `--study NAME`, `--db URL`, `--exclude-flagged`;
- `EXCLUSION_RULE_OPTIONS`: the thresholds of `annotation_server.quality.ExclusionRules`
  (`--max-failed-attention`, `--min-gold`, `--min-gold-answered`, `--min-seconds`, `--min-agreement`,
  `--min-agreement-units`), turned into rules by `exclusion_rules(**options)`;
- `check_study_options(...)`: a UsageError for --db / --exclude-flagged / thresholds without --study;
- `read_study(kind, study, db_url, exclude_flagged, thresholds)` -> `StudyData` (the records, the
  `ExclusionReport`, records per flagged worker), the one call a command makes;
- `excluded_json(data)` (the `excluded` key of the JSON outputs) and `echo_exclusion(data)` (table output).

The defaults written in the help texts are `ExclusionRules()`'s (a test keeps them in step).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import click

from subjlab.commands._database import database_url, db_option
from subjlab.commands._output import emit_table

STUDY_SOURCE_OPTIONS: list[Callable] = [
    click.option("--study", "study", default=None, metavar="NAME",
                 help="Read the study NAME straight from the annotation server's database instead of a file."),
    db_option("Database of --study"),
    click.option("--exclude-flagged", is_flag=True,
                 help="With --study: leave out every record of the workers the exclusion rules flag (failed "
                      "attention checks, low gold accuracy, too fast) and report how many and why. Without it "
                      "everything is kept and the flagged workers are only listed."),
]

#: option name -> (ExclusionRules field, click type, help). "0 = off" where a zero disables the rule.
_RULES: dict[str, tuple[str, Any, str]] = {
    "--max-failed-attention": ("max_failed_attention", click.IntRange(0),
                               "Flag workers who failed more attention checks than this [default: 0]."),
    "--min-gold": ("min_gold_accuracy", click.FloatRange(0, 1),
                   "Flag workers whose gold accuracy is below this (0 = off) [default: 0.6]."),
    "--min-gold-answered": ("min_gold_answered", click.IntRange(1),
                            "--min-gold applies once a worker answered this many gold items [default: 3]."),
    "--min-seconds": ("min_median_seconds", click.FloatRange(0),
                      "Flag workers whose median time per unit is below this many seconds (0 = off) [default: 2.0]."),
    "--min-agreement": ("min_agreement", click.FloatRange(0, 1),
                        "Flag workers whose agreement with the majority of the others is below this "
                        "[default: off; on subjective tasks disagreement is the signal]."),
    "--min-agreement-units": ("min_agreement_units", click.IntRange(1),
                              "--min-agreement applies over at least this many comparable units [default: 5]."),
}


def _rule_option(name: str) -> Callable:
    field_name, kind, text = _RULES[name]
    return click.option(name, field_name, type=kind, default=None, help=text)


EXCLUSION_RULE_OPTIONS: list[Callable] = [_rule_option(name) for name in _RULES]
#: The keyword names the rule options pass to the command (the ExclusionRules field names).
RULE_FIELDS = tuple(spec[0] for spec in _RULES.values())
#: ExclusionRules field -> its option name.
OPTION_OF = {spec[0]: name for name, spec in _RULES.items()}
#: Rules whose threshold 0 means "off" (None in ExclusionRules).
_ZERO_IS_OFF = ("min_gold_accuracy", "min_median_seconds", "min_agreement")


def apply_options(options: list[Callable]) -> Callable:
    """Decorator applying click options in the order listed (first on top of --help)."""

    def wrap(f: Callable) -> Callable:
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


def exclusion_rules(**thresholds: Any):
    """Return `ExclusionRules()` with the given thresholds replaced (None: keep the default; 0 turns off
    the gold, speed and agreement rules). Keywords: the names in RULE_FIELDS."""
    from annotation_server.quality import ExclusionRules

    unknown = set(thresholds) - set(RULE_FIELDS)
    if unknown:
        raise TypeError(f"unknown exclusion thresholds: {sorted(unknown)}")
    changes = {}
    for name, value in thresholds.items():
        if value is None:
            continue
        changes[name] = None if (name in _ZERO_IS_OFF and value == 0) else value
    return replace(ExclusionRules(), **changes)


def rules_json(rules: Any) -> dict[str, Any]:
    """Return the thresholds of an ExclusionRules as JSON."""
    return {f.name: getattr(rules, f.name) for f in fields(rules)}


def resolve_db_url(db_url: str | None) -> str:
    """The database URL of --db (see `_database.database_url`); FileNotFoundError for a SQLite file
    that does not exist (rather than creating an empty one)."""
    return database_url(db_url, must_exist=True)


@dataclass(frozen=True)
class StudyData:
    """A study's records read from the database: `records` (Labels or Judgments, flagged workers' ones
    left out when `report.applied`), the `ExclusionReport`, and the number of records of each flagged worker."""

    records: list
    report: Any
    per_worker: dict[str, int] = field(default_factory=dict)


def load_study_records(db_url: str | None, study: str, kind: str, exclude_flagged: bool, rules: Any = None) -> StudyData:
    """Read the study's labels (`kind="labeling"`) or judgments (`kind="pairwise"`) from the database.

    Raises ValueError for an unknown study, a study of the other kind, or a database not at the schema
    head; FileNotFoundError for a missing SQLite file.
    """
    from annotation_server.quality import exclude_records, load_study_data

    url = resolve_db_url(db_url)
    everything, report = load_study_data(url, study, exclude_flagged=False, rules=rules)
    if report.kind != kind:
        hint = "subjlab rank --study" if report.kind == "pairwise" else "subjlab agreement --study"
        raise ValueError(f"study {study!r} is a {report.kind} study, not a {kind} one (use {hint})")
    counts = Counter(r.worker for r in everything)
    per_worker = {f.worker: counts.get(f.worker, 0) for f in report.flagged}
    records, report = exclude_records(everything, report.flagged, study=report.study, kind=report.kind,
                                      apply=exclude_flagged)
    return StudyData(records=records, report=report, per_worker=per_worker)


def check_study_options(study: str | None, db_url: str | None, exclude_flagged: bool,
                        thresholds: dict[str, Any]) -> None:
    """Raise click.UsageError when --db, --exclude-flagged or an exclusion threshold is given without --study."""
    if study is not None:
        return
    used = (["--db"] if db_url is not None else []) + (["--exclude-flagged"] if exclude_flagged else [])
    used += [OPTION_OF[name] for name in RULE_FIELDS if thresholds.get(name) is not None]
    if used:
        raise click.UsageError(f"{', '.join(used)}: these options need --study NAME")


def read_study(kind: str, study: str, db_url: str | None, exclude_flagged: bool, thresholds: dict[str, Any]) -> StudyData:
    """Read a study's labels (`kind="labeling"`) or judgments (`kind="pairwise"`) with the exclusion rules
    made from the threshold options (`thresholds`: the commands' **kwargs of EXCLUSION_RULE_OPTIONS).

    Raises ValueError when nothing is left (no answers yet, or every worker excluded), plus the errors of
    `load_study_records`.
    """
    rules = exclusion_rules(**{name: thresholds.get(name) for name in RULE_FIELDS})
    data = load_study_records(db_url, study, kind, exclude_flagged, rules)
    if not data.records:
        what = "labels" if kind == "labeling" else "judgments"
        left = " left after excluding the flagged workers" if data.report.n_excluded else ""
        raise ValueError(f"study {study!r} has no {what}{left}")
    return data


def excluded_json(data: StudyData) -> dict[str, Any]:
    """The `excluded` key of the JSON outputs: `{"applied", "n", "of", "by_reason", "workers"}`.

    `n` records were left out of `of` (0 unless `applied`, i.e. --exclude-flagged); `by_reason` counts
    them per reason code (a record of a worker with two reasons counts under both); `workers` lists every
    flagged worker with their number of records and reasons (left out only when `applied`).
    """
    r = data.report
    return {"applied": r.applied, "n": r.n_excluded, "of": r.n_records, "by_reason": dict(sorted(r.excluded_by_reason.items())),
            "workers": [{"worker": f.worker, "n": data.per_worker.get(f.worker, 0),
                         "reasons": [{"code": x.code, "message": x.message} for x in f.reasons]} for f in r.flagged]}


def echo_exclusion(data: StudyData, err: bool = False) -> None:
    """Print the exclusion summary line and, if any worker is flagged, a table of them (stderr with `err`)."""
    r = data.report
    for line in r.lines():
        click.echo(line, err=err)
    if not r.flagged:
        return
    what = "labels" if r.kind == "labeling" else "judgments"
    title = f"Flagged workers ({'excluded' if r.applied else 'kept: add --exclude-flagged to leave them out'})"
    rows = [[f.worker, data.per_worker.get(f.worker, 0), "; ".join(f"{x.code}: {x.message}" for x in f.reasons)]
            for f in r.flagged]
    if err:
        for worker, n, reasons in rows:
            click.echo(f"  {worker} ({n} {what}): {reasons}", err=True)
        return
    emit_table(title, ["worker", what, "reasons"], rows)
