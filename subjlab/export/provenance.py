"""What an exported dataset says about where its rows came from (the facts of its dataset card).

- `generated_provenance(path, records, summary, ...)`: a set written by `subjlab generate` and its
  `<out>.summary.json`: task, mode, model and backend, settings, prompt hashes, filter counts, and for
  few-shot sets the real data the demonstrations came from (`DataSource`: where, its licence, how many
  of the demonstration ids were found there);
- `crowd_provenance(kind, records, source, excluded)`: crowd labels or judgments, from a file or a study;
- `data_licence(data_dir, data_name)`: the licence a data directory declares for a task (the bundled
  slices' manifest, a `subjlab data fetch` provenance.json, a manifest.json of the development-subset
  kind, an earlier export's subjlab_export.json, or a LICENSE file);
- `dataset_licence(...)`: the licence a generated set is published under by default.

Records and files only: nothing here imports the server, generation or training.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from subjlab import __version__
from subjlab.data import BUNDLED_DATA_DIR, load_split, resolve_data_dir, split_path
from subjlab.records import Example, Judgment, Label
from subjlab.tasks import TaskSpec

#: The machine-readable provenance file written beside the card (an export can be `--data` again).
PROVENANCE_FILE = "subjlab_export.json"

#: Licence ids the Hugging Face Hub knows (its list of repository licences), those a dataset is likely to use.
HUB_LICENCES = (
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "cc0-1.0",
    "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0", "odc-by", "odbl", "pddl",
    "openrail", "unknown",
)

#: Generation settings the card shows per mode (keys of the summary's `config`).
_COMMON_SETTINGS = ("temperature", "top_p", "seed", "max_tokens", "word_margin", "min_words", "near_duplicate_threshold")
SETTINGS = {
    "zero-shot": (*_COMMON_SETTINGS, "diversity_every", "max_turns", "stall_turns", "task_digest"),
    "few-shot": (*_COMMON_SETTINGS, "shots", "demo_copy_threshold", "task_digest"),
}


@dataclass(frozen=True)
class Licence:
    """A licence: `hub_id` (a HUB_LICENCES id, "unknown" when none applies), a name, a link, and the
    statement it was taken from (the source's own words, or why it was chosen)."""

    hub_id: str
    name: str
    statement: str
    url: str | None = None
    attribution: str | None = None


UNKNOWN_LICENCE = Licence("unknown", "unknown", "the exporter chose no licence (`subjlab export --license ID` sets one) "
                                                "and none follows from real data the rows drew on")


@dataclass(frozen=True)
class DataSource:
    """The real data a few-shot set's demonstrations came from, and what was checked of it."""

    description: str  #: where, in words ("the data bundled with subjlab (...)", "DIR (--data)")
    path: str  #: the train split read
    sha256: str | None  #: of that split file (None for a saved-split folder)
    how_chosen: str  #: why this directory ("--data of the export", "the run's data_dir", ...)
    licence: Licence
    demonstration_ids: int  #: distinct demonstration ids in the set
    found: int  #: how many of them are rows of that split
    notices: dict[str, str] = field(default_factory=dict)  #: file name in the export -> source file path


@dataclass(frozen=True)
class GeneratedProvenance:
    """Facts of one generated set (one config of the export)."""

    config: str
    task: str
    task_description: str
    labels: list[str]
    label_field: str
    mode: str
    backends: list[str]
    models: list[str]
    rows: int
    per_label: dict[str, int]
    source_file: str
    source_sha256: str
    prompt_hashes: dict[str, int]
    diversity_turn_texts: int | None  #: zero-shot: texts written in reply to the diversity prompt
    settings: dict[str, Any]
    run: dict[str, Any]  #: the summary's counts: requests, tokens, candidates, filters, surplus, ...
    created: tuple[str, str] | None
    real_data: DataSource | None
    warnings: list[str]
    kind: str = "generated"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the `configs` entries of subjlab_export.json)."""
        return asdict(self)


@dataclass(frozen=True)
class CrowdProvenance:
    """Facts of crowd labels or judgments (one config of the export)."""

    config: str
    kind: str  #: "labels" or "judgments"
    rows: int
    workers: int
    units: int  #: items labelled, or tasks compared
    studies: list[str]
    source: str
    created: tuple[str, str] | None
    excluded: dict[str, Any] | None  #: `excluded` of a study read with exclusion rules (None for a file)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the `configs` entries of subjlab_export.json)."""
        return asdict(self)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read a generation summary (`<out>.summary.json`); FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `subjlab generate` writes it beside its output, and the card "
                                "needs it (model, settings, filter counts)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON summary ({exc})") from None
    for key in ("task", "mode", "config"):
        if key not in summary:
            raise ValueError(f"{path}: field '{key}': missing (not a summary of subjlab generate)")
    return summary


def generated_provenance(path: Path, records: Sequence[Example], summary: dict[str, Any], task: TaskSpec,
                         data_dir: str | Path | None = None) -> GeneratedProvenance:
    """The provenance of one generated set. `data_dir` (the export's --data) names where few-shot
    demonstrations came from when the run did not record it; ValueError when records and summary disagree."""
    if not records:
        raise ValueError(f"{path}: no records")
    for i, rec in enumerate(records, start=1):
        for name in ("task", "mode"):
            if rec.extra.get(name) != summary[name]:
                raise ValueError(f"{path}:{i}: field '{name}': {rec.extra.get(name)!r}, but its summary says "
                                 f"{summary[name]!r}")
    per_label = Counter(str(r.label) for r in records)
    warnings = []
    if summary.get("per_label") and {k: v for k, v in summary["per_label"].items() if v} != dict(per_label):
        warnings.append(f"the file holds {dict(per_label)} texts per label but its summary counted "
                        f"{summary['per_label']}: it changed after the run; the run's counts describe the run")
    dates = sorted(str(r.extra["created_at"]) for r in records if r.extra.get("created_at"))
    config = summary["config"]
    real = None
    if summary["mode"] == "few-shot":
        real = demonstration_source(task, records, config.get("data_dir"), data_dir)
        if real.found < real.demonstration_ids:
            warnings.append(f"{real.demonstration_ids - real.found} of {real.demonstration_ids} demonstration ids "
                            f"are not rows of {real.path}: the set may have been drawn from other data "
                            "(name it with --data)")
    diversity = None
    if summary["mode"] == "zero-shot":
        every = int(config.get("diversity_every") or 0)
        # the rule of generation.prompts.is_diversity_turn: turn n > 0 with n % diversity_every == 0
        turns = [r.extra.get("conversation_turn") for r in records]
        diversity = sum(1 for t in turns if isinstance(t, int) and every > 0 and t > 0 and t % every == 0)
    run_keys = ("requests", "cache_hits", "retries", "tokens_in", "tokens_out", "candidates", "filters", "surplus",
                "abandoned_conversations", "per_label_target", "stopped", "complete", "estimated_cost_usd")
    return GeneratedProvenance(
        config=task.data_name, task=task.name, task_description=task.description, labels=list(task.labels),
        label_field=task.label_field, mode=summary["mode"],
        backends=sorted({str(r.extra.get("backend", summary.get("backend"))) for r in records}),
        models=sorted({str(r.extra.get("model", summary.get("model"))) for r in records}),
        rows=len(records), per_label={lab: per_label.get(lab, 0) for lab in task.labels},
        source_file=path.name, source_sha256=file_sha256(path),
        prompt_hashes=dict(Counter(str(r.extra.get("prompt_hash")) for r in records).most_common()),
        diversity_turn_texts=diversity,
        settings={k: config[k] for k in SETTINGS.get(summary["mode"], ()) if config.get(k) is not None},
        run={k: summary.get(k) for k in run_keys if k in summary},
        created=(dates[0], dates[-1]) if dates else None, real_data=real, warnings=warnings)


def demonstration_source(task: TaskSpec, records: Sequence[Example], run_data_dir: str | None,
                         data_dir: str | Path | None) -> DataSource:
    """Where a few-shot set's demonstrations came from: the export's --data, else the run's recorded
    data_dir, else what the default resolution gives now; checked by looking its ids up there."""
    if data_dir is not None:
        how, root = "--data of the export", resolve_data_dir(data_dir)
    elif run_data_dir:
        how, root = "the data_dir the run recorded", resolve_data_dir(run_data_dir)
    else:
        how = ("the run recorded no data directory, so it used $SUBJLAB_DATA or the bundled data; checked against "
               + ("$SUBJLAB_DATA" if os.environ.get("SUBJLAB_DATA") else "the bundled data"))
        root = resolve_data_dir(None)
    split = split_path(task, "train", root)
    ids = {str(i) for r in records for i in (r.extra.get("demonstration_ids") or [])}
    rows = {ex.id for ex in load_split(task, "train", root)}
    bundled = root == BUNDLED_DATA_DIR
    description = f"the slice bundled with subjlab {__version__}" if bundled else str(root)
    shown = f"subjlab/datasets/{split.relative_to(root).as_posix()}" if bundled else str(split)
    notices = {}
    for name in ("LICENSE", "NOTICE.md"):
        if (root / task.data_name / name).is_file():
            notices[f"SOURCE_{name}"] = str(root / task.data_name / name)
    return DataSource(description=description, path=shown, sha256=file_sha256(split) if split.is_file() else None,
                      how_chosen=how, licence=data_licence(root, task.data_name), demonstration_ids=len(ids),
                      found=len(ids & rows), notices=notices)


def data_licence(data_dir: str | Path, data_name: str) -> Licence:
    """The licence a data directory declares for a task (see the module doc for where it looks)."""
    root = Path(data_dir)
    manifest = root / "manifest.json"
    if manifest.is_file():
        entries = _json(manifest).get("tasks") or []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("task") == data_name and entry.get("licence"):
                return _licence_of(entry["licence"], entry.get("attribution"), f"{manifest}")
    fetched = root / data_name / "provenance.json"
    if fetched.is_file():
        stated = (_json(fetched).get("licence") or {}).get("statement")
        if stated:
            return Licence("unknown", "as stated by the source", str(stated))
    exported = root / PROVENANCE_FILE
    if exported.is_file():
        lic = _json(exported).get("licence")
        if isinstance(lic, dict) and lic.get("hub_id"):
            return Licence(**{k: lic.get(k) for k in ("hub_id", "name", "statement", "url", "attribution")})
    if (root / data_name / "LICENSE").is_file():
        return Licence("unknown", "see its LICENSE file", f"{root / data_name / 'LICENSE'} (not identified)")
    return Licence("unknown", "unknown", f"no licence found in {root} (no manifest.json, {data_name}/provenance.json, "
                                         f"{PROVENANCE_FILE} or {data_name}/LICENSE)")


def _licence_of(value: Any, attribution: Any, where: str) -> Licence:
    if isinstance(value, dict):
        hub = str(value.get("id", "")).lower()
        return Licence(hub if hub in HUB_LICENCES else "unknown", str(value.get("name") or value.get("id")),
                       str(value.get("as_stated_in_source") or f"as listed in {where}"), value.get("url"),
                       str(attribution) if attribution else None)
    return Licence("unknown", "as stated by the source", str(value), attribution=str(attribution) if attribution else None)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def dataset_licence(sets: Sequence[GeneratedProvenance], chosen: str | None) -> Licence:
    """The licence of a generated dataset: `chosen` (--license) if given; else the licence of the data
    the few-shot demonstrations came from (the texts imitate it), the same for every set; else unknown."""
    if chosen is not None:
        if chosen not in HUB_LICENCES:
            raise ValueError(f"--license {chosen!r} is not one of the Hub's licence ids: {', '.join(HUB_LICENCES)}")
        return Licence(chosen, chosen, "chosen by the exporter (--license)")
    sources = {s.config: s.real_data.licence for s in sets if s.real_data is not None}
    ids = {lic.hub_id for lic in sources.values()}
    if len(ids) > 1:
        listed = ", ".join(f"{name}: {lic.hub_id}" for name, lic in sources.items())
        raise ValueError(f"the sets drew on data under different licences ({listed}): export them separately or "
                         "choose one with --license")
    if ids and ids != {"unknown"}:
        source = next(iter(sources.values()))
        return Licence(source.hub_id, source.name, "the licence of the real data the few-shot demonstrations came "
                       f"from (the texts imitate it): {source.statement}", source.url, source.attribution)
    return UNKNOWN_LICENCE


def crowd_provenance(kind: str, records: Sequence[Label] | Sequence[Judgment], source: str,
                     excluded: dict[str, Any] | None = None) -> CrowdProvenance:
    """The provenance of crowd labels (`kind="labels"`) or judgments (`kind="judgments"`)."""
    if kind not in ("labels", "judgments"):
        raise ValueError(f"kind must be 'labels' or 'judgments', got {kind!r}")
    if not records:
        raise ValueError(f"{source}: no {kind}")
    if kind == "labels":
        units = {r.item for r in records}  # type: ignore[union-attr]
    else:
        units = {t for r in records for t in (r.left, r.right)}  # type: ignore[union-attr]
    studies = sorted({str(r.study if kind == "judgments" else r.extra.get("study", "")) for r in records} - {""})
    dates = sorted(r.created_at for r in records if r.created_at)
    return CrowdProvenance(config=kind, kind=kind, rows=len(records), workers=len({r.worker for r in records}),
                           units=len(units), studies=studies, source=source,
                           created=(dates[0], dates[-1]) if dates else None, excluded=excluded)
