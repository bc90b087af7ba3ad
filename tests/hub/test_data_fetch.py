"""`subjlab data fetch`: saved copies and downloads (a real HTTP server on loopback), pins, atomic writes."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import socket
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from subjlab.cli import cli
from subjlab.sources.fetch import download
from subjlab.sources.registry import PAPER_TASKS, SOURCES


def fetch(*args):
    return CliRunner().invoke(cli, ["data", "fetch", *map(str, args)])


def failed(res) -> str:
    """Assert a clean CLI failure (exit 1 from an error message, not an uncaught exception); return stderr."""
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    return res.stderr


def read(folder: Path, task: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class _Server:
    """A real HTTP server on 127.0.0.1 in a thread; `handler` serves files or misbehaves on purpose."""

    def __init__(self, handler, directory: Path | None = None):
        self.requests: list[str] = []
        outer = self

        class Logged(handler):
            def log_message(self, *args):  # keep test output quiet, remember the paths asked for
                outer.requests.append(self.path)

        factory = functools.partial(Logged, directory=str(directory)) if directory else Logged
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), factory)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def serve_folder(folder: Path) -> _Server:
    return _Server(SimpleHTTPRequestHandler, folder)


class _Truncating(SimpleHTTPRequestHandler):
    """Promises 10,000 bytes, sends 10 and hangs up: an interrupted download."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "10000")
        self.end_headers()
        self.wfile.write(b"ham\thello\n")
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)


# --- conversion of every task from a saved copy ----------------------------------------------------
@pytest.fixture
def fetched_all(tmp_path, pinned_to_fixtures):
    res = fetch("--all", "--out", tmp_path / "data", "--source-dir", pinned_to_fixtures)
    assert res.exit_code == 0, res.output
    return tmp_path / "data", res


# Expected texts per split for the sources with their own split (every rule is deterministic there).
KEPT_SPLIT = {
    "ag_news": ("title", {"train": ["Widget Maker Posts Record Quarter", "Harbour Talks Resume", "Lakeside Rovers Win Cup Final",
                                    "Lab Unveils Quieter Fan", "Sprinter Sets Club Record", "Phone Battery Lasts a Week",
                                    "Rain Delays Harvest", "Coach Signs Extension"],
                          "test": ["Bank Cuts Rates", "Ceasefire Holds", "Marathon Draws Record Field", "Probe Reaches Comet",
                                   'Retailer Says "Best Season Ever"']}),
    "imdb": ("review_id", {"train": ["train/neg/0_2", "train/neg/3_1", "train/pos/0_9", "train/pos/1_8", "train/pos/2_10",
                                     "train/pos/10_7"],
                           "test": ["test/neg/0_1", "test/neg/5_3", "test/pos/0_10", "test/pos/1_7"]}),
    "tweet_irony": ("source_line", {"train": [1, 2, 3, 4, 6], "test": [1, 2, 3]}),
    "tweet_emotion": ("source_line", {"train": [1, 2, 3, 4, 5, 6, 7, 8], "test": [1, 2, 3, 4]}),
    "humor": ("source_row", {"train": list(range(0, 14)), "test": list(range(10))}),
    "tweet_sarcasm": ("source_row", {"train": [r for r in range(20) if r not in (17, 19)],
                                     "test": [r for r in range(26) if r != 24]}),
}


@pytest.mark.parametrize("task", sorted(KEPT_SPLIT))
def test_sources_with_a_split_keep_it_minus_duplicates_and_train_rows_seen_in_test(fetched_all, task):
    out, _ = fetched_all
    key, expected = KEPT_SPLIT[task]
    for split in ("train", "test"):
        assert sorted(r[key] for r in read(out, task, split)) == sorted(expected[split]), split


def test_reddit_emotion_drops_multi_label_rows_and_the_train_text_seen_in_test(fetched_all):
    out, _ = fetched_all
    train = read(out, "reddit_emotion", "train")
    assert len(train) == 14 and "Thank you!" not in {r["text"] for r in train}
    assert len(read(out, "reddit_emotion", "test")) == 9
    assert all(set(r) == {"text", "label", "ekman_label", "id"} for r in train)


@pytest.mark.parametrize("task,pool_per_label", [
    ("sms_spam", {"ham": 17, "spam": 6}),
    ("financial_phrasebank", {"negative": 5, "neutral": 3, "positive": 12}),
    ("sarcasm_news", {"not_sarcastic": 5, "sarcastic": 6}),
    ("fewrel", {"country": 7, "league": 7, "screenwriter": 7, "tributary": 9}),
])
def test_sources_without_a_split_hold_out_a_third_of_the_deduplicated_pool(fetched_all, task, pool_per_label):
    out, _ = fetched_all
    train, test = read(out, task, "train"), read(out, task, "test")
    for label, n in pool_per_label.items():
        assert sum(r["label"] == label for r in test) == n // 3, label
        assert sum(r["label"] == label for r in train) == n - n // 3, label
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    prov = json.loads((out / task / "provenance.json").read_text(encoding="utf-8"))
    assert prov["stats"]["pool_after_dedup"] == pool_per_label


def test_financial_phrasebank_output_rows_carry_agreement_and_drop_the_two_label_sentence(fetched_all):
    out, _ = fetched_all
    rows = read(out, "financial_phrasebank", "train") + read(out, "financial_phrasebank", "test")
    assert not any(r["text"].startswith("TELECOMWORLDWIRE-7 April 2006") for r in rows)
    assert sum(r["text"].startswith("The issuer is solely responsible") for r in rows) == 1
    assert all(list(r) == ["text", "label", "agreement", "source_line"] for r in rows)


def test_fewrel_writes_the_p403_files_on_the_side_of_their_shared_sentence(fetched_all):
    out, _ = fetched_all
    side = {r["text"]: s for s in ("train", "test") for r in read(out, "fewrel", s)}
    alt = {s: [json.loads(x) for x in (out / "fewrel" / f"alt_P403_mouth_of_the_watercourse.{s}.jsonl")
               .read_text(encoding="utf-8").splitlines()] for s in ("train", "test")}
    assert len(alt["train"]) + len(alt["test"]) == 6
    shared = [(s, r["text"]) for s in alt for r in alt[s] if r["text"] in side]
    assert len(shared) == 1 and side[shared[0][1]] == shared[0][0]
    assert {r["label"] for s in alt for r in alt[s]} == {"mouth of the watercourse"}


def test_fetch_prints_one_result_line_per_task_and_the_output_loads_as_task_data(fetched_all):
    out, res = fetched_all
    assert [line.split(":")[0] for line in res.stdout.splitlines()] == list(SOURCES)
    assert "sms_spam: written" in res.stdout and "(train.jsonl 16, test.jsonl 7)" in res.stdout
    listed = CliRunner().invoke(cli, ["data", "list", "--data", str(out), "--task", "sms_spam", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    entry = json.loads(listed.stdout)["tasks"][0]
    assert entry["train"]["per_label"] == {"ham": 12, "spam": 4} and entry["test"]["total"] == 7


def test_provenance_names_sources_hashes_licence_split_and_counts(fetched_all, pinned_to_fixtures):
    out, _ = fetched_all
    prov = json.loads((out / "tweet_sarcasm" / "provenance.json").read_text(encoding="utf-8"))
    names = [s["name"] for s in prov["sources"]]
    assert names == ["train.En.csv", "english_task_a.csv", "LICENSE"]
    for entry in prov["sources"]:
        data = (pinned_to_fixtures / "tweet_sarcasm" / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() == entry["pinned"]["sha256"]
        assert entry["bytes"] == len(data) and entry["commit"] == "dfc708b53bde1bb571abfb5692f63231c2232195"
        assert entry["url"].startswith("https://raw.githubusercontent.com/iabufarha/iSarcasmEval/dfc708b5")
    assert prov["sources"][1]["url"].endswith("/third-party%20annotations/english_task_a.csv")
    assert prov["licence"]["texts"]["LICENSE"].startswith("MIT License\n\nCopyright (c) 2022 Ibrahim Abu Farha")
    assert prov["split"]["seed"] == 20231207 and prov["split"]["max_train_per_label"] is None
    assert prov["stats"]["train_dedup"] == {"dropped_duplicate_rows": 2, "dropped_conflicting_label_rows": 0}
    for name in ("train.jsonl", "test.jsonl"):
        data = (out / "tweet_sarcasm" / name).read_bytes()
        assert prov["files"][name] == {"rows": data.count(b"\n"), "bytes": len(data),
                                       "sha256": hashlib.sha256(data).hexdigest()}
    fpb = json.loads((out / "financial_phrasebank" / "provenance.json").read_text(encoding="utf-8"))
    assert "CC BY-NC-SA" not in fpb["licence"]["statement"]  # the statement is quoted, the text is the release's
    assert "Attribution-NonCommercial-ShareAlike 3.0" in fpb["licence"]["texts"]["FinancialPhraseBank-v1.0/License.txt"]


def test_two_runs_write_byte_identical_folders(tmp_path, pinned_to_fixtures):
    for name in ("a", "b"):
        res = fetch("--all", "--out", tmp_path / name, "--source-dir", pinned_to_fixtures,
                    "--max-train-per-label", 3, "--max-test-per-label", 2, "--seed", 5)
        assert res.exit_code == 0, res.output
    first, second = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert first == second and len(first) == 3 * len(SOURCES) + 2  # + FewRel's two P403 files
    assert all(sum(r["label"] == lab for r in read(tmp_path / "a", "ag_news", "train")) <= 3
               for lab in ("World", "Sports", "Business", "Sci/Tech"))
    assert json.loads(first["sms_spam/provenance.json"])["split"]["seed"] == 5


# --- pins ------------------------------------------------------------------------------------------
def test_every_source_file_is_pinned_to_a_commit_or_a_published_hash():
    assert set(PAPER_TASKS) < set(SOURCES) and "tweet_sarcasm" in SOURCES
    for source in SOURCES.values():
        for sf in source.files:
            assert sf.sha256 or sf.git_blob
            if sf.url.startswith("https://raw.githubusercontent.com/"):
                assert len(sf.commit) == 40 and f"/{sf.commit}/" in sf.url and sf.git_blob
            else:
                assert len(sf.sha256) == 64


def test_a_file_that_differs_from_its_pin_is_refused_and_nothing_is_written(tmp_path, pinned_to_fixtures):
    saved = tmp_path / "saved"
    shutil.copytree(pinned_to_fixtures, saved)
    target = saved / "sms_spam" / "SMSSpamCollection"
    target.write_bytes(target.read_bytes().replace(b"jurong", b"jurung"))
    res = fetch("sms_spam", "--out", tmp_path / "data", "--source-dir", saved)
    failed(res)
    assert "content differs from the pinned SMSSpamCollection" in res.stderr and "sha256" in res.stderr
    assert list((tmp_path / "data").iterdir()) == []


def test_the_real_pins_refuse_the_fixture_copies(tmp_path, saved_copy):
    res = fetch("humor", "--out", tmp_path / "data", "--source-dir", saved_copy)
    assert "content differs from the pinned train.csv: git blob" in failed(res)


def test_a_missing_saved_file_is_named_with_its_url(tmp_path, pinned_to_fixtures):
    saved = tmp_path / "saved"
    shutil.copytree(pinned_to_fixtures / "tweet_irony", saved / "tweet_irony")
    (saved / "tweet_irony" / "mapping.txt").unlink()
    res = fetch("tweet_irony", "--out", tmp_path / "data", "--source-dir", saved)
    failed(res)
    assert "tweet_irony/mapping.txt: missing" in res.stderr
    assert "raw.githubusercontent.com/cardiffnlp/tweeteval/4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66/datasets/irony/mapping.txt" \
        in res.stderr


# --- downloads through a real HTTP server ----------------------------------------------------------
def test_download_from_a_mirror_gives_the_same_files_as_the_saved_copy(tmp_path, pinned_to_fixtures):
    tasks = ["sms_spam", "financial_phrasebank", "tweet_sarcasm"]
    local = fetch(*tasks, "--out", tmp_path / "local", "--source-dir", pinned_to_fixtures)
    assert local.exit_code == 0, local.output
    with serve_folder(pinned_to_fixtures) as server:
        res = fetch(*tasks, "--out", tmp_path / "http", "--mirror", server.url)
    assert res.exit_code == 0, res.output
    assert f"sms_spam: downloading {server.url}/sms_spam/SMSSpamCollection" in res.stderr
    assert sorted(server.requests) == sorted(f"/{t}/{f.name}" for t in tasks for f in SOURCES[t].files)
    for task in tasks:
        for name in ("train.jsonl", "test.jsonl"):
            assert (tmp_path / "http" / task / name).read_bytes() == (tmp_path / "local" / task / name).read_bytes()
    prov = json.loads((tmp_path / "http" / "sms_spam" / "provenance.json").read_text(encoding="utf-8"))
    assert prov["sources"][0]["obtained_from"] == f"{server.url}/sms_spam/SMSSpamCollection"
    assert sorted(p.name for p in (tmp_path / "http").iterdir()) == sorted(tasks)  # no temporary leftovers


def test_keep_sources_saves_downloads_for_offline_reuse(tmp_path, pinned_to_fixtures):
    keep = tmp_path / "kept"
    with serve_folder(pinned_to_fixtures) as server:
        res = fetch("reddit_emotion", "--out", tmp_path / "data", "--mirror", server.url, "--keep-sources", keep)
        assert res.exit_code == 0, res.output
        assert len(server.requests) == 4
        again = fetch("reddit_emotion", "--out", tmp_path / "data", "--mirror", server.url, "--keep-sources", keep,
                      "--force")
        assert again.exit_code == 0, again.output
        assert len(server.requests) == 4 and "using the saved copy" in again.stderr
    for f in SOURCES["reddit_emotion"].files:
        assert (keep / "reddit_emotion" / f.name).read_bytes() == (pinned_to_fixtures / "reddit_emotion" / f.name).read_bytes()
    offline = fetch("reddit_emotion", "--out", tmp_path / "offline", "--source-dir", keep)
    assert offline.exit_code == 0, offline.output


def test_a_failed_download_names_the_url_explains_source_dir_and_writes_nothing(tmp_path, pinned_to_fixtures):
    served = tmp_path / "served"
    shutil.copytree(pinned_to_fixtures / "tweet_emotion", served / "tweet_emotion")
    (served / "tweet_emotion" / "test_labels.txt").unlink()
    keep = tmp_path / "kept"
    with serve_folder(served) as server:
        res = fetch("tweet_emotion", "--out", tmp_path / "data", "--mirror", server.url, "--keep-sources", keep)
    failed(res)
    assert f"download failed: {server.url}/tweet_emotion/test_labels.txt: HTTP 404" in res.stderr
    assert "--source-dir" in res.stderr
    assert list((tmp_path / "data").iterdir()) == []
    assert sorted(p.name for p in (keep / "tweet_emotion").iterdir()) == \
        ["test_text.txt", "train_labels.txt", "train_text.txt"]  # the files before the failed one, whole and verified


def test_an_interrupted_download_leaves_no_file(tmp_path):
    dest = tmp_path / "d" / "SMSSpamCollection"
    with _Server(_Truncating) as server:
        with pytest.raises(ConnectionError, match="stopped after 10 of 10000 bytes"):
            download(f"{server.url}/sms_spam/SMSSpamCollection", dest, progress=False)
        res = fetch("sms_spam", "--out", tmp_path / "data", "--mirror", server.url)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert "stopped after 10 of 10000 bytes" in failed(res) and "--source-dir" in res.stderr
    assert list((tmp_path / "data").iterdir()) == []


def test_no_network_says_which_url_failed_and_how_to_work_offline(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    res = fetch("sms_spam", "--out", tmp_path / "data", "--mirror", f"http://127.0.0.1:{port}", "--timeout", 5)
    failed(res)
    assert f"download failed: http://127.0.0.1:{port}/sms_spam/SMSSpamCollection" in res.stderr
    assert "--source-dir SAVED" in res.stderr and "sms_spam/SMSSpamCollection" in res.stderr


# --- existing folders and usage --------------------------------------------------------------------
def test_refetching_skips_up_to_date_tasks_and_refuses_other_settings_without_force(tmp_path, pinned_to_fixtures):
    out = tmp_path / "data"
    assert fetch("sms_spam", "--out", out, "--source-dir", pinned_to_fixtures).exit_code == 0
    before = tree_bytes(out)
    again = fetch("sms_spam", "--out", out, "--source-dir", pinned_to_fixtures)
    assert again.exit_code == 0 and "sms_spam: up to date" in again.stdout and tree_bytes(out) == before
    other = fetch("sms_spam", "--out", out, "--source-dir", pinned_to_fixtures, "--seed", 1)
    assert "fetched with other settings" in failed(other) and tree_bytes(out) == before
    forced = fetch("sms_spam", "--out", out, "--source-dir", pinned_to_fixtures, "--seed", 1, "--force")
    assert forced.exit_code == 0 and tree_bytes(out) != before
    assert json.loads((out / "sms_spam" / "provenance.json").read_text())["split"]["seed"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["sms_spam"]


def test_a_folder_not_written_by_fetch_is_left_alone_without_force(tmp_path, pinned_to_fixtures):
    own = tmp_path / "data" / "humor"
    own.mkdir(parents=True)
    (own / "train.jsonl").write_text('{"text": "mine", "label": "humor"}\n')
    res = fetch("humor", "--out", tmp_path / "data", "--source-dir", pinned_to_fixtures)
    assert "was not written by `subjlab data fetch`" in failed(res)
    assert (own / "train.jsonl").read_text() == '{"text": "mine", "label": "humor"}\n'


@pytest.mark.parametrize("args,message", [
    ([], "name TASKs or pass --all"),
    (["--all", "imdb"], "name TASKs or pass --all"),
    (["nope"], "unknown task(s) nope"),
    (["imdb", "--source-dir", ".", "--mirror", "http://x"], "does not combine"),
])
def test_usage_errors_are_clear(tmp_path, args, message):
    res = fetch(*args, "--out", tmp_path / "data")
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "data").exists()


def test_the_paper_config_expects_the_fetched_data_of_its_ten_tasks():
    from subjlab.runner.config import load_config

    path = Path(__file__).resolve().parents[2] / "subjlab" / "configs" / "paper.toml"
    config = load_config(path)
    assert tuple(config.task_refs) == PAPER_TASKS
    header = path.read_text(encoding="utf-8").split("[study]")[0]
    assert "subjlab data fetch --all --out data/" in header and "SUBJLAB_DATA=data/ subjlab run configs/paper.toml" in header
