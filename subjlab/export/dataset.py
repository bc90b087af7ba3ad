"""Write records as a Hugging Face `datasets` dataset: `save_to_disk` and parquet, with a card.

The folder written (`write_dataset`), one config per table:

    OUT/README.md                        the dataset card (YAML metadata the Hub reads, then the provenance)
    OUT/subjlab_export.json              the same provenance, machine-readable
    OUT/<config>/dataset_dict.json       a DatasetDict saved with save_to_disk: datasets.load_from_disk("OUT/<config>")
    OUT/<config>/<split>/                 ... its splits (arrow files, state.json)
    OUT/<config>/<split>.parquet         the same rows as parquet (what the card's `configs` point the Hub at)
    OUT/<config>/SOURCE_LICENSE, ...     licence and notice files of the real data a set drew on, when present

`export_generated(sets, out, ...)` exports sets written by `subjlab generate` with their summaries
(`<out>.summary.json`; one config per task,
split `train`, `label` as a ClassLabel of the task's labels); `export_crowd(kind, records, source, out,
...)` exports crowd labels or judgments (config `labels` / `judgments`, split `train`). A generated
set's config is named for its task's data folder, so OUT works as `--data OUT` (`subjlab.data` reads
`<task>/<split>/` and `<task>/<split>.parquet`). The folder is built beside OUT and moved into place at
the end: a failure leaves no half-written export, and an existing OUT is only replaced with `force`.
Nothing here touches the network: datasets writes local files only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from subjlab import __version__
from subjlab.export.card import render_card
from subjlab.export.provenance import (
    PROVENANCE_FILE,
    UNKNOWN_LICENCE,
    GeneratedProvenance,
    Licence,
    crowd_provenance,
    dataset_licence,
    file_sha256,
    generated_provenance,
    read_summary,
)
from subjlab.records import Judgment, Label, now_iso, read_examples
from subjlab.tasks import REGISTRY, TaskSpec, get_task

#: What the intro of a card says, per kind of export.
_INTROS = {
    "generated": "Labelled texts for text classification written by a language model with subjlab, prompted as in Li, "
                 "Zhu, Lu & Yin, \"Synthetic Data Generation with Large Language Models for Text Classification: "
                 "Potential and Limitations\" (EMNLP 2023). The texts are synthetic: they were parsed and filtered "
                 "(word limit, meta-talk, duplicates, near duplicates, copies of demonstrations) but not read by a person.",
    "labels": "Crowd labels of text-classification items, collected with subjlab's annotation server: several workers "
              "label each item, so the rows carry the annotators' disagreement (per-item agreement a_i).",
    "judgments": "Pairwise crowd judgments of which of two text-classification tasks is more objective, collected with "
                 "subjlab's annotation server (Bradley-Terry scores of task subjectivity come from them).",
}


@dataclass(frozen=True)
class Table:
    """One config of the dataset: rows per split, and the columns stored as ClassLabel (column -> names)."""

    config: str
    splits: Mapping[str, Sequence[Mapping[str, Any]]]
    class_labels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)  #: extra file name in the config folder -> source path


@dataclass(frozen=True)
class Written:
    """What `write_dataset` wrote: the folder, the card, and per config its splits' row counts and files."""

    out: Path
    card: Path
    provenance: Path
    configs: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"out": str(self.out), "card": str(self.card), "provenance": str(self.provenance), "configs": self.configs}


def data_files(tables: Sequence[Table]) -> list[dict[str, Any]]:
    """The card's `configs` metadata: each config's parquet file per split (paths relative to OUT)."""
    return [{"config_name": t.config, "data_files": [{"split": s, "path": f"{t.config}/{s}.parquet"} for s in t.splits]}
            for t in tables]


def to_dataset(rows: Sequence[Mapping[str, Any]], class_labels: Mapping[str, Sequence[str]], what: str):
    """Build a `datasets.Dataset` from flat rows (columns in first-seen order; missing fields are null).

    Columns holding only nulls (or lists of nulls) are typed as strings; `class_labels` columns become
    ClassLabel. Raises ValueError naming the column when its values mix types (parquet needs one type).
    """
    import pyarrow as pa
    from datasets import ClassLabel, Dataset, Features, List, Value

    if not rows:
        raise ValueError(f"{what}: no rows to export")
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    data = {col: [row.get(col) for row in rows] for col in columns}
    features = Features()
    for col, values in data.items():
        if col in class_labels:
            names = list(class_labels[col])
            unknown = sorted({str(v) for v in values if v is not None} - set(names))
            if unknown:
                raise ValueError(f"{what}: field '{col}': {unknown} are not among the labels {names}")
            data[col] = [None if v is None else names.index(v) for v in values]
            features[col] = ClassLabel(names=names)
            continue
        try:
            arrow_type = pa.array(values).type
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            kinds = sorted({type(v).__name__ for v in values if v is not None})
            raise ValueError(f"{what}: field '{col}' mixes value types ({', '.join(kinds)}); a column must hold "
                             f"one type ({exc})") from None
        feature = Features.from_arrow_schema(pa.schema([(col, arrow_type)]))[col]
        if isinstance(feature, Value) and feature.dtype == "null":
            feature = Value("string")
        elif isinstance(feature, List) and isinstance(feature.feature, Value) and feature.feature.dtype == "null":
            feature = List(Value("string"))
        features[col] = feature
    return Dataset.from_dict(data, features=features)


def write_dataset(out: str | Path, tables: Sequence[Table], card: str, provenance: Mapping[str, Any],
                  force: bool = False) -> Written:
    """Write `tables` as a dataset folder at `out` (see the module doc) with `card` as README.md and
    `provenance` as subjlab_export.json. Raises FileExistsError for a non-empty `out` without `force`."""
    from datasets import DatasetDict, disable_progress_bars

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty (pass --force to replace it)")
    names = [t.config for t in tables]
    if len(set(names)) != len(names):
        raise ValueError(f"two tables share a config name: {names}")
    disable_progress_bars()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        configs: dict[str, dict[str, Any]] = {}
        for t in tables:
            folder = work / t.config
            splits = DatasetDict({s: to_dataset(rows, t.class_labels, f"{t.config}/{s}") for s, rows in t.splits.items()})
            splits.save_to_disk(str(folder))
            for split, dataset in splits.items():
                dataset.to_parquet(str(folder / f"{split}.parquet"))
            for name, source in t.files.items():
                shutil.copyfile(source, folder / name)
            configs[t.config] = {"splits": {s: len(d) for s, d in splits.items()},
                                 "parquet": [f"{t.config}/{s}.parquet" for s in splits],
                                 "saved": t.config, "files": sorted(t.files)}
        (work / "README.md").write_text(card, encoding="utf-8")
        (work / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.chmod(work, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
        _replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Written(out=out, card=out / "README.md", provenance=out / PROVENANCE_FILE, configs=configs)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(work: Path, out: Path) -> None:
    """Move the finished folder `work` to `out`; an old `out` is moved aside first and removed after."""
    if not out.exists():
        os.replace(work, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    os.replace(out, old / "previous")
    os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)


def export_generated(sets: Sequence[tuple[str | Path, str | Path]], out: str | Path, data_dir: str | Path | None = None,
                     licence: str | None = None, title: str | None = None, tasks: Mapping[str, TaskSpec] | None = None,
                     force: bool = False) -> tuple[Written, list[GeneratedProvenance], Licence]:
    """Export generated sets, given as (set file, its summary file) pairs, as one dataset, a config per task.

    `tasks` resolves task names the registry does not know (a task file's); `data_dir` names where
    few-shot demonstrations came from; `licence` overrides `dataset_licence`'s choice."""
    provenances, tables = [], []
    for set_path, summary_file in sets:
        set_path = Path(set_path)
        summary = read_summary(summary_file)
        name = str(summary["task"])
        task = (tasks or {}).get(name) or (get_task(name) if name in REGISTRY else None)
        if task is None:
            raise ValueError(f"{set_path}: task {name!r} is not in the registry: pass its task file (--tasks-file)")
        records = read_examples(set_path)
        prov = generated_provenance(set_path, records, summary, task, data_dir)
        if any(t.config == prov.config for t in tables):
            raise ValueError(f"{set_path}: a second set of task {name!r}; one set per task (a config each): export "
                             "the others to another --out")
        rows = []
        for rec in records:
            row = rec.to_dict()
            if task.label_field != "label" and task.label_field not in row:
                row[task.label_field] = rec.label  # what subjlab.data reads the label from
            rows.append(row)
        notices = prov.real_data.notices if prov.real_data else {}
        tables.append(Table(prov.config, {"train": rows}, {"label": task.labels}, notices))
        provenances.append(prov)
    chosen = dataset_licence(provenances, licence)
    if title is None:
        p = provenances[0]
        title = (f"Synthetic {p.task} texts ({p.mode}, {', '.join(p.models)})" if len(provenances) == 1
                 else f"Synthetic texts for {', '.join(p.task for p in provenances)}")
    english = all(p.task in REGISTRY for p in provenances)
    written = _write(out, "generated", tables, chosen, title, english, provenances, [], force)
    return written, provenances, chosen


def export_crowd(kind: str, records: Sequence[Label] | Sequence[Judgment], source: str, out: str | Path,
                 excluded: Mapping[str, Any] | None = None, licence: str | None = None, title: str | None = None,
                 force: bool = False) -> tuple[Written, Licence]:
    """Export crowd labels (`kind="labels"`) or judgments as one dataset (config `kind`, split train).
    `source` says in words where the records came from; `excluded` is a study's exclusion summary."""
    prov = crowd_provenance(kind, records, source, dict(excluded) if excluded is not None else None)
    chosen = UNKNOWN_LICENCE if licence is None else dataset_licence([], licence)
    title = title or f"Crowd {kind}" + (f" of the study {', '.join(prov.studies)}" if prov.studies else "")
    table = Table(kind, {"train": [r.to_dict() for r in records]})
    return _write(out, kind, [table], chosen, title, True, [], [prov], force), chosen


def _write(out: str | Path, kind: str, tables: list[Table], licence: Licence, title: str, english: bool,
           generated: list, crowd: list, force: bool) -> Written:
    exported_at = now_iso()
    card = render_card(kind="generated" if generated else kind, title=title, intro=_INTROS[kind], licence=licence,
                       data_files=data_files(tables), generated=generated, crowd=crowd, english=english,
                       version=__version__, exported_at=exported_at,
                       splits={t.config: {s: len(rows) for s, rows in t.splits.items()} for t in tables})
    provenance = {"format": "subjlab-export/1", "kind": kind, "title": title, "subjlab_version": __version__,
                  "exported_at": exported_at, "licence": asdict(licence),
                  "configs": [p.to_dict() for p in [*generated, *crowd]]}
    return write_dataset(out, tables, card, provenance, force)
