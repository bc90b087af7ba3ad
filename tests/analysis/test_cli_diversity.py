"""`subjlab diversity` as a user runs it, on real SMS spam texts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.diversity import chamfer, remote_clique, top_k_similarity
from analysis.embeddings import embed_texts
from subjlab.cli import cli
from subjlab.data import load_split
from subjlab.records import write_records
from subjlab.tasks import get_task


@pytest.fixture(autouse=True)
def session_cache(tmp_path_factory, monkeypatch) -> Path:
    """Point $SUBJLAB_CACHE at this test session's cache (shared with the other diversity tests)."""
    root = tmp_path_factory.getbasetemp() / "subjlab-cache"
    monkeypatch.setenv("SUBJLAB_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def files(task_data, tmp_path_factory) -> dict[str, Path]:
    """DATA: 10 real SMS train texts (5 ham, 5 spam); REAL: 6 real SMS test texts."""
    sms = get_task("sms_spam")
    root = tmp_path_factory.mktemp("diversity-cli")
    data = root / "data.jsonl"
    real = root / "real.jsonl"
    write_records(data, load_split(sms, "train", task_data, limit_per_label=5, seed=0))
    write_records(real, load_split(sms, "test", task_data, limit_per_label=3, seed=0))
    return {"data": data, "real": real}


def _run(*args: str):
    return CliRunner().invoke(cli, ["diversity", *args])


def _texts(path: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [(r["text"], r["label"]) for r in rows]


def test_json_output_has_the_interface_keys_and_matches_the_library(files, session_cache):
    res = _run(str(files["data"]), "--reference", str(files["real"]), "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["distance"] == "cosine"
    assert out["overall"]["n"] == 10
    assert set(out["per_label"]) == {"ham", "spam"}
    assert all(set(v) == {"n", "remote_clique", "chamfer"} and v["n"] == 5 for v in out["per_label"].values())
    data = _texts(files["data"])
    emb = embed_texts([t for t, _ in data], cache=session_cache / "embeddings")
    ref = embed_texts([t for t, _ in _texts(files["real"])], cache=session_cache / "embeddings")
    assert out["overall"]["remote_clique"] == pytest.approx(remote_clique(emb), abs=1e-9)
    assert out["overall"]["chamfer"] == pytest.approx(chamfer(emb), abs=1e-9)
    ham = [i for i, (_, lab) in enumerate(data) if lab == "ham"]
    assert out["per_label"]["ham"]["chamfer"] == pytest.approx(chamfer(emb[ham]), abs=1e-9)
    assert out["similarity_top5"] == pytest.approx(top_k_similarity(ref, emb, 5), abs=1e-9)
    assert out["reference_n"] == 6


def test_without_reference_there_is_no_similarity(files):
    res = _run(str(files["data"]), "--format", "json")
    assert res.exit_code == 0, res.output
    assert "similarity_top5" not in json.loads(res.output)


def test_table_output_shows_labels_overall_and_similarity(files):
    res = _run(str(files["data"]), "--reference", str(files["real"]))
    assert res.exit_code == 0, res.output
    for word in ("ham", "spam", "(overall)", "remote_clique", "chamfer", "similarity_top5", "diagonal excluded"):
        assert word in res.output


def test_limit_per_label_samples_each_label(files):
    res = _run(str(files["data"]), "--limit-per-label", "3", "--seed", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["overall"]["n"] == 6 and {v["n"] for v in out["per_label"].values()} == {3}


def test_a_label_with_one_text_is_reported_with_null_metrics(files, tmp_path):
    rows = [json.loads(line) for line in files["data"].read_text().splitlines()]
    ham = [r for r in rows if r["label"] == "ham"]
    one_spam = [r for r in rows if r["label"] == "spam"][:1]
    path = tmp_path / "one_spam.jsonl"
    write_records(path, ham + one_spam)
    res = _run(str(path), "--format", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["per_label"]["spam"] == {"n": 1, "remote_clique": None, "chamfer": None}
    assert out["per_label"]["ham"]["n"] == 5 and out["overall"]["n"] == 6


def test_no_cache_writes_no_embedding_store(files, tmp_path, monkeypatch):
    monkeypatch.setenv("SUBJLAB_CACHE", str(tmp_path / "fresh-cache"))
    rows = [json.loads(line) for line in files["data"].read_text().splitlines()][:3]
    path = tmp_path / "three.jsonl"
    write_records(path, rows)
    res = _run(str(path), "--no-cache", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["overall"]["n"] == 3
    assert not (tmp_path / "fresh-cache" / "embeddings").exists()


def test_malformed_line_is_a_clean_error_naming_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": "ham"}\n{"text": 7, "label": "ham"}\n')
    res = _run(str(path))
    assert res.exit_code == 2
    assert "bad.jsonl:2" in res.output and "'text'" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize(
    "rows, extra, message",
    [
        ([{"text": "alone", "label": "ham"}], [], "at least 2 texts"),
        ([{"text": "one", "label": "a"}, {"text": "two", "label": "b"}], ["--reference", "REAL"], "at least 5 candidate texts"),
    ],
)
def test_too_few_texts_is_a_clean_error(files, tmp_path, rows, extra, message):
    path = tmp_path / "few.jsonl"
    write_records(path, rows)
    extra = [str(files["real"]) if a == "REAL" else a for a in extra]
    res = _run(str(path), *extra)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_missing_file_is_a_clean_error(tmp_path):
    res = _run(str(tmp_path / "nope.jsonl"))
    assert res.exit_code == 2 and "nope.jsonl" in res.output and "no such file" in res.output


def test_help_explains_the_metrics_and_the_excluded_diagonal():
    res = _run("--help")
    assert res.exit_code == 0
    for phrase in ("remote_clique", "chamfer", "diagonal is excluded", "--reference", "--limit-per-label", "cosine"):
        assert phrase in res.output.lower()
