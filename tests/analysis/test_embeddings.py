"""analysis.embeddings: real all-MiniLM-L6-v2 embeddings, the on-disk cache, and its safety."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis.embeddings import Embedder, EmbeddingStore, embed_texts, model_id, normalize_rows, text_key
from subjlab.data import load_split
from subjlab.packaged_models import minilm_path
from subjlab.tasks import get_task

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sms_texts(task_data) -> list[str]:
    """Six real SMS texts (3 ham, 3 spam)."""
    return [ex.text for ex in load_split(get_task("sms_spam"), "train", task_data, limit_per_label=3, seed=1)]


def test_embeddings_are_float32_unit_rows_in_input_order_and_deterministic(sms_texts):
    first = embed_texts(sms_texts, cache=False)
    again_reversed = embed_texts(sms_texts[::-1], cache=False)  # a second, independent model run
    assert first.dtype == np.float32 and first.shape == (len(sms_texts), 384)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, again_reversed[::-1], atol=1e-6)
    # different texts get different vectors: no row is a copy of another
    sims = first @ first.T
    assert (sims[~np.eye(len(sms_texts), dtype=bool)] < 0.999).all()


def test_repeated_texts_are_embedded_once_and_get_the_same_row(sms_texts):
    embedder = Embedder(cache=False)
    out = embedder.embed([sms_texts[0], sms_texts[1], sms_texts[0]])
    assert embedder.stats.texts == 3 and embedder.stats.unique == 2 and embedder.stats.computed == 2
    assert np.array_equal(out[0], out[2])


def test_cache_serves_identical_vectors_without_running_the_model(sms_texts, tmp_path):
    cold = Embedder(cache=tmp_path)
    first = cold.embed(sms_texts[:4])
    assert cold.stats.computed == 4 and cold.stats.cache_hits == 0 and cold.stats.model_calls == 1

    warm = Embedder(cache=tmp_path)  # a new embedder, as in a new process: only the disk is shared
    second = warm.embed(sms_texts[:4])
    assert warm.stats.cache_hits == 4 and warm.stats.computed == 0 and warm.stats.model_calls == 0
    assert np.array_equal(first, second)

    mixed = warm.embed([sms_texts[4], *sms_texts[:4]])
    assert warm.stats.computed == 1 and warm.stats.cache_hits == 8 and warm.stats.model_calls == 1
    assert np.array_equal(mixed[1:], first)
    np.testing.assert_allclose(mixed[0], embed_texts([sms_texts[4]], cache=False)[0], atol=1e-6)

    stores = list(tmp_path.iterdir())
    assert len(stores) == 1 and (stores[0] / EmbeddingStore.FILENAME).is_file()
    with EmbeddingStore(stores[0]) as store:
        assert len(store) == 5


def test_cache_key_depends_on_model_and_text():
    assert text_key("m1", "hello") != text_key("m2", "hello")
    assert text_key("m1", "hello") != text_key("m1", "hello ")
    assert text_key("m1", "hello") == text_key("m1", "hello") and len(text_key("m1", "x")) == 32


def test_model_id_follows_the_files_not_the_location(tmp_path):
    default = model_id(None)
    assert default.startswith("all-MiniLM-L6-v2@")
    copy = tmp_path / "minilm-copy"
    shutil.copytree(minilm_path(), copy, ignore=shutil.ignore_patterns("*.safetensors"))
    (copy / "model.safetensors").symlink_to(minilm_path() / "model.safetensors")
    same = model_id(str(copy))
    assert same.split("@")[1] == default.split("@")[1]
    changed = tmp_path / "minilm-changed"
    shutil.copytree(copy, changed, symlinks=True)
    (changed / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text().replace("true", "false"))
    assert model_id(str(changed)).split("@")[1] != default.split("@")[1]


def _writer_script(db_dir: Path, start: int, stop: int, forever: bool = False) -> str:
    return f"""
import numpy as np, sys
sys.path.insert(0, {str(REPO)!r})
from analysis.embeddings import EmbeddingStore
def vec(i):
    return np.full(384, i, dtype=np.float32)
keys = lambda i: i.to_bytes(32, "big")
with EmbeddingStore({str(db_dir)!r}) as store:
    while True:
        for s in range({start}, {stop}, 10):
            store.put_many((keys(i), vec(i)) for i in range(s, min({stop}, s + 10)))
        print("pass", flush=True)
        if not {forever}:
            break
"""


def test_store_is_safe_under_concurrent_writer_processes(tmp_path):
    # three processes write overlapping key ranges in many small transactions at the same time
    procs = [
        subprocess.Popen([sys.executable, "-c", _writer_script(tmp_path, lo, lo + 400)], stderr=subprocess.PIPE, text=True)
        for lo in (0, 200, 400)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    with EmbeddingStore(tmp_path) as store:
        assert len(store) == 800
        keys = [i.to_bytes(32, "big") for i in range(800)]
        got = store.get_many(keys, dim=384)
    assert len(got) == 800
    assert all(np.array_equal(got[i.to_bytes(32, "big")], np.full(384, i, dtype=np.float32)) for i in range(800))


def test_store_stays_readable_after_a_writer_is_killed_mid_write(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _writer_script(tmp_path, 0, 5000, forever=True)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "pass"  # at least one full pass committed
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # killed inside a write loop, possibly mid-transaction
    proc.wait(timeout=30)
    with EmbeddingStore(tmp_path) as store:
        assert len(store) == 5000
        got = store.get_many([i.to_bytes(32, "big") for i in range(5000)], dim=384)
        assert len(got) == 5000 and np.array_equal(got[(4999).to_bytes(32, "big")], np.full(384, 4999, np.float32))
        store.put_many([(b"k" * 32, np.ones(384, np.float32))])
        assert len(store) == 5001


def test_unreadable_cache_file_is_a_clear_error(tmp_path):
    (tmp_path / EmbeddingStore.FILENAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="delete"):
        EmbeddingStore(tmp_path)


def test_normalize_rows_scales_to_unit_length_and_rejects_undefined_rows():
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 2.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 1.0]], atol=1e-7)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        normalize_rows(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="row 0 contains NaN"):
        normalize_rows(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-d"):
        normalize_rows(np.ones(3))


def test_missing_model_is_an_error_not_a_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found locally"):
        embed_texts(["some text"], model_path="no-such-org/no-such-model", cache=False)
    weights_file = tmp_path / "model.bin"
    weights_file.write_bytes(b"x")
    with pytest.raises(ValueError, match="must be a directory"):
        embed_texts(["some text"], model_path=weights_file, cache=False)


def test_non_string_text_is_rejected():
    with pytest.raises(ValueError, match=r"texts\[1\] is int"):
        embed_texts(["ok", 5], cache=False)  # type: ignore[list-item]


def test_empty_input_gives_an_empty_matrix_of_the_model_width():
    assert embed_texts([], cache=False).shape == (0, 384)
