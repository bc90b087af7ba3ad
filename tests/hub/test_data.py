"""Where data comes from: --data, then $SUBJLAB_DATA, then the slices bundled in the package, which
carry their licences, attribution and provenance and match what the manifest says of them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from subjlab.data import BUNDLED_DATA_DIR, bundled_tasks, data_source, load_split, resolve_data_dir, split_path
from subjlab.records import RecordError
from subjlab.tasks import REGISTRY

REPO = Path(__file__).resolve().parents[2]
#: Licences under which a task may be bundled (the issue's list: MIT, Apache-2.0, CC BY, CC BY-NC-SA).
REDISTRIBUTABLE = {"MIT", "Apache-2.0", "CC-BY-4.0", "CC-BY-NC-SA-3.0"}


def _manifest() -> dict:
    return json.loads((BUNDLED_DATA_DIR / "manifest.json").read_text(encoding="utf-8"))


def test_without_data_or_env_the_bundled_slices_are_used_even_beside_a_shared_folder(tmp_path, monkeypatch):
    (tmp_path / "shared" / "datasets" / "sms_spam").mkdir(parents=True)
    (tmp_path / "shared" / "datasets" / "sms_spam" / "train.jsonl").write_text('{"text": "x", "label": "ham"}\n')
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # ../shared/datasets exists relative to the working directory
    monkeypatch.delenv("SUBJLAB_DATA", raising=False)
    assert resolve_data_dir() == BUNDLED_DATA_DIR
    assert data_source() == f"the data bundled with subjlab ({BUNDLED_DATA_DIR})"
    assert len(load_split(REGISTRY["sms_spam"], "train")) == 400


def test_env_beats_bundled_and_explicit_beats_env(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    env_dir.mkdir()
    arg_dir.mkdir()
    monkeypatch.setenv("SUBJLAB_DATA", str(env_dir))
    assert resolve_data_dir() == env_dir.resolve()
    assert data_source() == f"{env_dir.resolve()} ($SUBJLAB_DATA)"
    assert resolve_data_dir(arg_dir) == arg_dir.resolve()
    assert data_source(arg_dir) == f"{arg_dir.resolve()} (--data)"


def test_a_task_without_bundled_data_says_what_is_bundled_and_how_to_point_at_data(monkeypatch):
    monkeypatch.delenv("SUBJLAB_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as err:
        split_path(REGISTRY["ag_news"], "train")
    msg = str(err.value)
    assert "task 'ag_news'" in msg and "data bundled with subjlab" in msg
    assert "subjlab bundles data only for sms_spam, financial_phrasebank, humor, tweet_sarcasm" in msg
    assert "--data DIR" in msg and "SUBJLAB_DATA" in msg and "subjlab data fetch" in msg


def test_missing_directories_and_files_name_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SUBJLAB_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match=r"SUBJLAB_DATA=.*nope is not a directory; pass --data DIR"):
        resolve_data_dir()
    with pytest.raises(FileNotFoundError, match=r"data directory .*nope2 \(--data\) does not exist"):
        resolve_data_dir(tmp_path / "nope2")
    with pytest.raises(FileNotFoundError, match=r"humor/test.jsonl is missing \(data directory .* \(--data\)\)"):
        split_path(REGISTRY["humor"], "test", tmp_path)


def test_bundled_files_match_the_manifest_rows_counts_and_hashes():
    manifest = _manifest()
    assert [t["task"] for t in manifest["tasks"]] == list(bundled_tasks())
    for entry in manifest["tasks"]:
        spec = REGISTRY[entry["task"]]
        for split in ("train", "test"):
            data = (BUNDLED_DATA_DIR / entry["task"] / f"{split}.jsonl").read_bytes()
            meta = entry["files"][f"{split}.jsonl"]
            assert hashlib.sha256(data).hexdigest() == meta["sha256"] and len(data) == meta["bytes"]
            rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
            assert len(rows) == meta["rows"] == entry["counts"][split]["total"]
            examples = load_split(spec, split, BUNDLED_DATA_DIR)
            assert len(examples) == len(rows)  # every bundled row belongs to the task
            assert len({e.id for e in examples}) == len(rows)
            per_label = {lab: sum(e.label == lab for e in examples) for lab in spec.labels}
            assert max(per_label.values()) <= entry["caps"][f"{split}_per_label"]


def test_every_bundled_task_carries_a_redistributable_licence_attribution_and_provenance():
    for entry in _manifest()["tasks"]:
        folder = BUNDLED_DATA_DIR / entry["task"]
        assert entry["licence"]["id"] in REDISTRIBUTABLE
        licence = (folder / "LICENSE").read_text(encoding="utf-8")
        notice = (folder / "NOTICE.md").read_text(encoding="utf-8")
        if entry["licence"]["id"] == "MIT":
            assert "MIT License" in licence and "Copyright (c)" in licence
        elif entry["licence"]["id"] == "Apache-2.0":
            assert "Apache License" in licence and "Version 2.0" in licence
        else:
            assert entry["licence"]["url"] in licence
        assert entry["licence"]["name"] in notice and entry["attribution"] in notice
        for source in entry["sources"]:
            assert len(source["commit"]) == 40 and f"`{source['repo']}` @ `{source['commit']}`" in notice
        assert str(entry["seed"]) in entry["draw"] and entry["task"] in entry["draw"]
        assert all(len(f["sha256"]) == 64 for f in entry["drawn_from"]["files"].values())


def test_the_bundled_data_keeps_the_repository_small_and_covers_the_demo():
    total = sum(p.stat().st_size for p in BUNDLED_DATA_DIR.rglob("*") if p.is_file())
    assert total < 3_000_000
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    demo = tomllib.loads((REPO / "subjlab" / "configs" / "demo.toml").read_text(encoding="utf-8"))
    assert set(demo["study"]["tasks"]) <= set(bundled_tasks())
    assert {"financial_phrasebank", "tweet_sarcasm"} <= set(demo["study"]["tasks"])  # real human agreement


def test_a_built_wheel_carries_the_bundled_data(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("subjlab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for task in bundled_tasks():
        for name in ("train.jsonl", "test.jsonl", "LICENSE", "NOTICE.md"):
            assert f"subjlab/datasets/{task}/{name}" in names
    assert "subjlab/datasets/manifest.json" in names
    assert "subjlab/configs/demo.toml" in names


@pytest.mark.devdata
def test_bundled_rows_are_the_development_rows_with_the_same_ids(dev_data):
    for task in bundled_tasks():
        for split in ("train", "test"):
            dev = {e.id: e for e in load_split(REGISTRY[task], split, dev_data)}
            for ex in load_split(REGISTRY[task], split, BUNDLED_DATA_DIR):
                assert ex.id in dev and dev[ex.id].text == ex.text and dev[ex.id].label == ex.label


@pytest.mark.devdata
def test_the_bundle_rebuilds_byte_identically_from_the_development_data(dev_data):
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "bundle_data.py"), "--source", str(dev_data), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "25 of 25 files identical" in out.stdout


# ---- splits stored as a saved `datasets` split, parquet or CSV (what `subjlab export` writes, or the Hub serves)
def _rows(examples):
    return [(e.id, e.text, e.label, e.extra) for e in examples]


def test_jsonl_stays_the_first_choice_then_saved_split_parquet_and_csv(tmp_path):
    import datasets

    task = REGISTRY["humor"]
    real = load_split(task, "train", BUNDLED_DATA_DIR)[:6]
    folder = tmp_path / "humor"
    folder.mkdir()
    rows = [{"id": e.id, "text": e.text, "label": e.label, **e.extra} for e in real]
    import pandas as pd
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    assert split_path(task, "train", tmp_path) == folder / "train.csv"
    pd.DataFrame(rows[:3]).to_parquet(folder / "train.parquet")
    assert split_path(task, "train", tmp_path) == folder / "train.parquet"
    datasets.Dataset.from_list(rows[:2]).save_to_disk(str(folder / "train"))
    assert split_path(task, "train", tmp_path) == folder / "train"
    assert _rows(load_split(task, "train", tmp_path)) == _rows(real[:2])
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:1]))
    assert split_path(task, "train", tmp_path) == folder / "train.jsonl"


def test_parquet_train_and_csv_test_of_one_task_load_with_their_extra_fields(tmp_path):
    import pandas as pd
    task = REGISTRY["financial_phrasebank"]
    (tmp_path / "financial_phrasebank").mkdir()
    train, test = (load_split(task, s, BUNDLED_DATA_DIR)[:5] for s in ("train", "test"))
    for split, rows, write in (("train", train, "to_parquet"), ("test", test, "to_csv")):
        frame = pd.DataFrame([e.to_dict() for e in rows])
        target = tmp_path / "financial_phrasebank" / f"{split}.{'parquet' if split == 'train' else 'csv'}"
        getattr(frame, write)(target, **({} if split == "train" else {"index": False}))
    assert _rows(load_split(task, "train", tmp_path)) == _rows(train)
    # CSV values are all strings (numbers included); parquet keeps the types
    assert _rows(load_split(task, "test", tmp_path)) == [
        (e.id, e.text, e.label, {k: str(v) for k, v in e.extra.items()}) for e in test]
    assert isinstance(test[0].extra["source_line"], int)


def test_a_malformed_csv_split_names_file_line_and_field(tmp_path):
    (tmp_path / "humor").mkdir()
    (tmp_path / "humor" / "test.csv").write_text("id,text,label\na,a fine joke,humor\nb,,not_humor\n")
    with pytest.raises(RecordError) as err:
        load_split(REGISTRY["humor"], "test", tmp_path)
    assert str(err.value) == f"{tmp_path / 'humor' / 'test.csv'}:3: field 'text': must not be empty"


def test_a_missing_split_names_every_format_looked_for_and_what_a_saved_dataset_has(tmp_path):
    import datasets

    (tmp_path / "humor").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        split_path(REGISTRY["humor"], "test", tmp_path)
    assert "humor/test.jsonl is missing (data directory" in str(err.value)
    assert "and so are test/, test.parquet, test.csv beside it" in str(err.value)
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "x", "label": "humor"}])}).save_to_disk(
        str(tmp_path / "humor"))
    with pytest.raises(FileNotFoundError, match=r"the dataset saved in .*humor has splits train\)"):
        split_path(REGISTRY["humor"], "test", tmp_path)
    (tmp_path / "humor" / "test").mkdir()
    with pytest.raises(FileNotFoundError, match=r"humor/test is a folder but not a split saved by datasets"):
        split_path(REGISTRY["humor"], "test", tmp_path)


def test_a_dataset_saved_as_the_data_directory_itself_is_explained(tmp_path):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"text": "x", "label": "humor"}])}).save_to_disk(
        str(tmp_path / "saved"))
    with pytest.raises(FileNotFoundError, match=r"saved is itself a dataset saved by datasets, but a data directory "
                                                r"holds one per task: save it as DIR/humor and pass --data DIR\)"):
        split_path(REGISTRY["humor"], "train", tmp_path / "saved")
