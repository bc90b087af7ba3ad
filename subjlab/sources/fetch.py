"""`subjlab data fetch`: get a task's public source files, check them, convert them, write the task folder.

Files come from one of three places: the public URLs in `registry.SOURCES` (default), a mirror that
serves the saved-copy layout (`<mirror>/<task>/<name>`), or a local saved copy (`<source_dir>/<task>/
<name>`, offline). Whatever the origin, each file's content must match the hashes pinned for it, or
nothing is written.

A download streams into a temporary file beside its destination and is renamed into place only once
complete and verified, so an interrupted or failed download leaves nothing behind. The task folder
(`<out>/<task>/train.jsonl`, `test.jsonl`, `provenance.json`) is likewise built in a temporary folder
and renamed into place whole.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from subjlab.atomic import atomic_open
from subjlab.records import write_records
from subjlab.sources.draw import SPLITS, DrawSettings, Drawn, draw
from subjlab.sources.parsers import PARSERS
from subjlab.sources.registry import HOLDOUT_PER_LABEL, SOURCES, SourceFile, TaskSource

PROVENANCE = "provenance.json"
_CHUNK = 1 << 16


class FetchError(RuntimeError):
    """Fetching a task failed; the message says which file or URL and what to do about it."""


@dataclass(frozen=True)
class FetchOptions:
    """Where files come from and go, and how the task files are drawn."""

    out: Path
    settings: DrawSettings = DrawSettings()
    source_dir: Path | None = None
    mirror: str | None = None
    keep_sources: Path | None = None
    force: bool = False
    timeout: float = 60.0
    progress: bool = True


@dataclass
class Obtained:
    """A source file on local disk and what was checked about it."""

    path: Path
    origin: str
    sha256: str
    git_blob: str
    size: int


@dataclass
class FetchResult:
    """One task's outcome: `status` is "written" or "up to date"; `counts` per written file."""

    task: str
    status: str
    folder: Path
    counts: dict[str, int] = field(default_factory=dict)


def file_hashes(path: Path) -> tuple[str, str, int]:
    """Return (sha256, git blob id, size) of a file, reading it once."""
    size = path.stat().st_size
    sha256, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest(), size


def verify(source_file: SourceFile, path: Path, origin: str) -> Obtained:
    """Check a file against its pinned hashes; raise FetchError naming the file on any mismatch."""
    sha256, blob, size = file_hashes(path)
    wrong = [f"{what} {got} (pinned {want})" for what, got, want in (("sha256", sha256, source_file.sha256),
                                                                       ("git blob", blob, source_file.git_blob))
             if want and got != want]
    if wrong:
        raise FetchError(f"{origin}: content differs from the pinned {source_file.name}: {'; '.join(wrong)}. "
                         f"Refusing to convert it. Expected the file {source_file.path or source_file.name} of "
                         f"{source_file.url}")
    return Obtained(path, origin, sha256, blob, size)


def download(url: str, dest: Path, *, timeout: float = 60.0, progress: bool = True, label: str = "") -> None:
    """Download `url` to `dest` via a temporary sibling and an atomic rename; nothing is left on failure."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "subjlab-data-fetch"})
    with atomic_open(dest, "wb", suffix=".part") as fh, urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        with tqdm(total=expected, unit="B", unit_scale=True, desc=label or dest.name, file=sys.stderr,
                  disable=not progress, leave=False) as bar:
            received = 0
            while chunk := response.read(_CHUNK):
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected is not None and received != expected:
            raise ConnectionError(f"the transfer stopped after {received} of {expected} bytes")


def _download_error(url: str, exc: BaseException, source: TaskSource) -> FetchError:
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    else:
        reason = str(getattr(exc, "reason", exc)) or type(exc).__name__
    names = ", ".join(f"{source.task}/{f.name}" for f in source.files)
    return FetchError(f"download failed: {url}: {reason}. Without network access, save the source files "
                      f"({names}) under one folder SAVED and run again with --source-dir SAVED "
                      f"(docs/data.md lists every URL).")


def obtain(source: TaskSource, opts: FetchOptions, scratch: Path,
           echo: Callable[[str], None] = print) -> dict[str, Obtained]:
    """Return every source file of `source` on local disk, verified against its pins."""
    files: dict[str, Obtained] = {}
    for sf in source.files:
        if opts.source_dir is not None:
            path = opts.source_dir / source.task / sf.name
            if not path.is_file():
                raise FetchError(f"{path}: missing; --source-dir needs every source file of {source.task} as "
                                 f"<dir>/{source.task}/<name> (this one is {sf.url})")
            files[sf.name] = verify(sf, path, str(path))
            continue
        keep = opts.keep_sources / source.task / sf.name if opts.keep_sources else None
        if keep is not None and keep.is_file():
            files[sf.name] = verify(sf, keep, str(keep))
            echo(f"{source.task}: {sf.name}: using the saved copy {keep}")
            continue
        url = f"{opts.mirror.rstrip('/')}/{quote(source.task)}/{quote(sf.name)}" if opts.mirror else sf.url
        dest = keep if keep is not None else scratch / sf.name
        echo(f"{source.task}: downloading {url}")
        try:
            download(url, dest, timeout=opts.timeout, progress=opts.progress, label=f"{source.task}/{sf.name}")
        except (OSError, http.client.HTTPException) as exc:  # URLError and timeouts are OSErrors
            raise _download_error(url, exc, source) from exc
        try:
            files[sf.name] = verify(sf, dest, url)
        except FetchError:
            dest.unlink(missing_ok=True)
            raise
    return files


def _settings_record(source: TaskSource, settings: DrawSettings) -> dict[str, Any]:
    return {"seed": settings.seed, "max_train_per_label": settings.max_train_per_label,
            "max_test_per_label": settings.max_test_per_label,
            "holdout_per_label": None if source.has_split else HOLDOUT_PER_LABEL}


def provenance(source: TaskSource, files: dict[str, Obtained], drawn: Drawn, settings: DrawSettings,
               written: dict[str, dict[str, Any]], licence_texts: dict[str, str]) -> dict[str, Any]:
    """The facts of one fetched task: sources and their hashes, licence, split rule, counts, files."""
    return {
        "task": source.task,
        "title": source.title,
        "note": source.note,
        "sources": [{"name": sf.name, "url": sf.url, "repo": sf.repo or None, "commit": sf.commit or None,
                     "path": sf.path or None, "obtained_from": files[sf.name].origin,
                     "sha256": files[sf.name].sha256, "git_blob": files[sf.name].git_blob,
                     "bytes": files[sf.name].size,
                     "pinned": {k: v for k, v in (("sha256", sf.sha256), ("git_blob", sf.git_blob)) if v},
                     "note": sf.note or None} for sf in source.files],
        "licence": {"statement": source.licence, "texts": licence_texts},
        "split": {"rule": source.split_rule, "source_has_split": source.has_split,
                  **_settings_record(source, settings),
                  "seeding": "each random choice uses random.Random('<seed>:<task>:<split or holdout>:<label>'); "
                             "file order random.Random('<seed>:<task>:<split>:order')"},
        "fields": source.fields,
        "stats": drawn.stats,
        "files": written,
    }


def convert(source: TaskSource, files: dict[str, Obtained], settings: DrawSettings,
            folder: Path) -> dict[str, int]:
    """Parse, draw and write one task's files into `folder` (which must be empty); return rows per file."""
    parsed = PARSERS[source.task]({name: o.path for name, o in files.items()})
    drawn = draw(source, parsed, settings)
    outputs = {f"{split}.jsonl": rows for split, rows in drawn.splits.items()}
    for stem, sides in drawn.alt.items():
        outputs.update({f"{stem}.{split}.jsonl": rows for split, rows in sides.items()})
    written: dict[str, dict[str, Any]] = {}
    for name, rows in outputs.items():
        write_records(folder / name, rows)
        sha256, _, size = file_hashes(folder / name)
        written[name] = {"rows": len(rows), "bytes": size, "sha256": sha256}
    texts = {name: files[name].path.read_text(encoding="utf-8", errors="replace") for name in source.licence_files}
    texts.update(parsed.licence_texts)
    record = provenance(source, files, drawn, settings, written, texts)
    (folder / PROVENANCE).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return {name: info["rows"] for name, info in written.items()}


def _up_to_date(source: TaskSource, folder: Path, settings: DrawSettings, force: bool) -> bool:
    if not folder.exists() or force:
        return False
    prov = folder / PROVENANCE
    if not prov.is_file():
        raise FetchError(f"{folder} exists and was not written by `subjlab data fetch`; --force replaces it")
    try:
        old = json.loads(prov.read_text(encoding="utf-8"))["split"]
    except (ValueError, KeyError) as exc:
        raise FetchError(f"{prov}: unreadable ({exc}); --force replaces the task folder") from None
    want = _settings_record(source, settings)
    if any(old.get(k) != v for k, v in want.items()):
        raise FetchError(f"{folder} was fetched with other settings ({ {k: old.get(k) for k in want} }); "
                         f"--force replaces it")
    return True


def _replace_folder(staging: Path, folder: Path) -> None:
    if folder.exists():
        retired = folder.with_name(f".{folder.name}.replaced")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(folder, retired)
        os.replace(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, folder)


def fetch_task(task: str, opts: FetchOptions, echo: Callable[[str], None] = print) -> FetchResult:
    """Fetch, check and convert one task into `opts.out/<task>/`; skip it when already fetched alike."""
    if task not in SOURCES:
        raise FetchError(f"unknown task {task!r}; fetchable tasks: {', '.join(SOURCES)}")
    source = SOURCES[task]
    folder = opts.out / task
    if _up_to_date(source, folder, opts.settings, opts.force):
        return FetchResult(task, "up to date", folder)
    opts.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=opts.out, prefix=f".{task}.partial-") as tmp:
        scratch, staging = Path(tmp) / "sources", Path(tmp) / task
        scratch.mkdir()
        staging.mkdir()
        files = obtain(source, opts, scratch, echo)
        echo(f"{task}: converting")
        counts = convert(source, files, opts.settings, staging)
        _replace_folder(staging, folder)
    return FetchResult(task, "written", folder, counts)
