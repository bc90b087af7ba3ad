"""The content-addressed step cache: run a step once per distinct input, skip it afterwards.

A `Step` names a folder (`runs/<study>/<task>/<condition>/<step>/`), the parameters that shape its
result (a JSON-able config slice), the files it reads, and the code versions that matter. Its *key*
is the SHA-256 of all three (input files by content). `StepRunner.run(step, fn)`:

- if the folder holds a `done.json` with the same key and every output it lists is still there, the
  step is *cached*: nothing runs;
- otherwise `fn(workdir)` runs in a staging folder `.<step>.partial-<key12>` beside the final one,
  every file it wrote is hashed, `done.json` is written last (atomically), and the staging folder
  replaces the final one. A crash leaves no `done.json`, so the step runs again next time; with
  `resume=True` the same staging folder (same key) is reused, so a step that resumes its own work
  (generation appends and continues) picks up where it stopped, while without it the leftover is
  cleared first. Partial folders of other keys (a setting changed since the crash) are removed.

Because downstream steps list upstream *output files* as inputs, a changed config value re-runs the
step it belongs to and then exactly those steps whose inputs actually changed.

Every outcome is appended to the run log (`steps.jsonl`) as a `StepRecord`, and announced through
the `echo` callback with its timing: wall seconds and the CPU seconds of this process (all its
threads), which, unlike wall time, stay comparable on a machine shared with other jobs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from subjlab.atomic import write_json_atomic
from subjlab.records import append_record, now_iso
from subjlab.runner.run_files import to_jsonable

DONE = "done.json"
#: Bumped when the on-disk layout of done.json changes (part of every key).
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Step:
    """One unit of work: `name` (for people and the log), its final `directory`, the JSON-able
    `params` that shape it, the `inputs` files it reads (hashed by content) and `versions` of the
    code that matters (e.g. {"transformers": "5.2"})."""

    name: str
    directory: Path
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Path] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    def key_material(self) -> dict[str, Any]:
        """Return what the key is the hash of (params, input file hashes, versions, cache format)."""
        return {
            "format": CACHE_FORMAT,
            "params": to_jsonable(self.params),
            "inputs": {name: file_sha256(Path(p)) for name, p in sorted(self.inputs.items())},
            "versions": dict(sorted(self.versions.items())),
        }

    def key(self) -> str:
        """Return the hex SHA-256 of `key_material()` as canonical JSON."""
        blob = json.dumps(self.key_material(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StepRecord:
    """What a step did: `status` is "ran" or "cached"; `seconds` the wall time it took when it ran
    (for a cached step: the time of the run that produced it) and `cpu_seconds` the CPU time of
    this process meanwhile (all threads; 0.0 in records written before it was logged); `meta`
    what the step returned; `session` the start time of the StepRunner that logged it (one per
    `subjlab run`)."""

    name: str
    key: str
    status: str
    seconds: float
    directory: str
    outputs: dict[str, str]
    meta: dict[str, Any]
    finished_at: str
    session: str = ""
    cpu_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class StepResult:
    """A finished step: its folder and record. `path(name)` gives an output file's path."""

    directory: Path
    record: StepRecord

    @property
    def meta(self) -> dict[str, Any]:
        """The JSON-able dict the step function returned (stored in done.json)."""
        return self.record.meta

    @property
    def ran(self) -> bool:
        """True when the step ran in this call, False when it came from the cache."""
        return self.record.status == "ran"

    def path(self, name: str) -> Path:
        """Return the path of output `name`; raise FileNotFoundError when the step did not write it."""
        if name not in self.record.outputs:
            raise FileNotFoundError(
                f"{self.directory}: step {self.record.name!r} wrote no {name!r} (it wrote {sorted(self.record.outputs)})"
            )
        return self.directory / name


StepFunction = Callable[[Path], "Mapping[str, Any] | None"]


class StepRunner:
    """Runs steps through the cache, logs each outcome to `log_path` (JSONL) and reports via `echo`.

    `resume=True` reuses a crashed step's staging folder (same key) instead of clearing it.
    `total` is the number of steps expected (for "[i/total]" progress); `records` collects every
    StepRecord of this session in order.
    """

    def __init__(
        self,
        log_path: Path,
        echo: Callable[[str], None] = print,
        resume: bool = False,
        total: int | None = None,
    ):
        self.log_path = Path(log_path)
        self.echo = echo
        self.resume = resume
        self.total = total
        self.records: list[StepRecord] = []
        self.session = now_iso()

    def lookup(self, step: Step, key: str | None = None) -> StepRecord | None:
        """Return the finished record for `step` when its folder is complete for this key, else None."""
        key = key or step.key()
        done = step.directory / DONE
        if not done.is_file():
            return None
        try:
            data = json.loads(done.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("key") != key:
            return None
        outputs = data.get("outputs", {})
        for rel in outputs:
            if not (step.directory / rel).is_file():
                return None
        return StepRecord(
            name=step.name,
            key=key,
            status="cached",
            seconds=float(data.get("seconds", 0.0)),
            directory=str(step.directory),
            outputs=dict(outputs),
            meta=dict(data.get("meta", {})),
            finished_at=str(data.get("finished_at", "")),
            session=self.session,
            cpu_seconds=float(data.get("cpu_seconds", 0.0)),
        )

    def run(self, step: Step, fn: StepFunction) -> StepResult:
        """Return the step's result, from the cache or by running `fn(workdir)` (see the module doc).

        `fn` writes its outputs under `workdir` and may return a JSON-able dict (kept as `meta`).
        """
        index = len(self.records) + 1
        prefix = f"[{index}/{self.total}]" if self.total else f"[{index}]"
        key = step.key()
        cached = self.lookup(step, key)
        if cached is not None:
            self._log(cached)
            self.echo(f"{prefix} {step.name}: cached ({cached.seconds:.1f} s when it ran; key {key[:10]})")
            return StepResult(step.directory, cached)

        staging = step.directory.parent / f".{step.directory.name}.partial-{key[:12]}"
        if staging.exists() and not self.resume:
            shutil.rmtree(staging)
        for stale in step.directory.parent.glob(f".{step.directory.name}.partial-*"):
            if stale != staging and stale.is_dir():
                shutil.rmtree(stale)  # partial work of an older key: never resumable
        resumed = staging.exists()
        staging.mkdir(parents=True, exist_ok=True)
        self.echo(f"{prefix} {step.name}: running{' (resuming partial work)' if resumed else ''} ...")
        start, cpu_start = time.perf_counter(), time.process_time()
        meta = fn(staging) or {}
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        meta = to_jsonable(dict(meta))
        outputs = {
            str(p.relative_to(staging)): file_sha256(p)
            for p in sorted(staging.rglob("*"))
            if p.is_file() and p.name != DONE
        }
        record = StepRecord(
            name=step.name,
            key=key,
            status="ran",
            seconds=round(seconds, 3),
            directory=str(step.directory),
            outputs=outputs,
            meta=meta,
            finished_at=now_iso(),
            session=self.session,
            cpu_seconds=round(cpu_seconds, 3),
        )
        done = {**record.to_dict(), "key_material": step.key_material()}
        done.pop("status")
        done.pop("session")
        write_json_atomic(staging / DONE, done)
        if step.directory.exists():
            shutil.rmtree(step.directory)
        os.replace(staging, step.directory)
        self._log(record)
        self.echo(f"{prefix} {step.name}: done in {seconds:.1f} s (CPU {cpu_seconds:.1f} s)")
        return StepResult(step.directory, record)

    def _log(self, record: StepRecord) -> None:
        self.records.append(record)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as fh:
            append_record(fh, record.to_dict())


_HASH_CACHE: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes (memoised by path, inode, size, mtime and ctime).

    A folder (a data split saved by `datasets`' save_to_disk) hashes the relative paths and hashes of
    all its files."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{member.relative_to(path).as_posix()}\0{file_sha256(member)}\n".encode())
        return digest.hexdigest()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: step input is missing") from None
    memo = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if memo in _HASH_CACHE:
        return _HASH_CACHE[memo]
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    _HASH_CACHE[memo] = digest.hexdigest()
    return _HASH_CACHE[memo]


def read_log(log_path: Path) -> list[StepRecord]:
    """Read every StepRecord from a run log (JSONL); raise ValueError naming the line on bad JSON."""
    out: list[StepRecord] = []
    with Path(log_path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(StepRecord(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ValueError(f"{log_path}:{lineno}: not a step record: {exc}") from None
    return out


def code_versions(*names: str) -> dict[str, str]:
    """Return name -> installed version of each distribution ("not installed" when absent): the code
    versions that are part of a step's key."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def embedder_id() -> str:
    """Return the fingerprint of the embedding model used for diversity (part of its step key)."""
    from analysis.embeddings import model_id

    return model_id()
