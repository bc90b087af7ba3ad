"""The filters measured on hand-labelled raw replies of the packaged model (data/filter_sample/):
each reply is parsed and filtered as the engine does, and what would enter a training set is
compared with its label. Recall of each bad kind and precision on clean texts stay above floors.

    python tests/generation/test_filter_sample.py      # prints the table (docs/generation.md)

A reply counts as
- kept when at least one of its candidate texts passes the filters (each reply is filtered on its
  own, so the duplicate checks, which depend on the rest of a run, play no part);
- caught (meta-talk, demonstration copy) when nothing of it is kept;
- caught (label leak) when no kept text still holds its leaking words (`marker`): dropped or cut off;
- clean and kept only when no kept text holds the talk it was wrapped in (its `marker`, if any).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from generation.config import GenerationConfig
from generation.filters import TextFilter
from generation.parsing import parse_response
from subjlab.tasks import REGISTRY, TaskSpec, get_task

SAMPLE_DIR = Path(__file__).parent / "data" / "filter_sample"
SAMPLE = SAMPLE_DIR / "labelled.jsonl"
CLASSES = ("clean", "meta", "demo_copy", "label_leak")
BAD = CLASSES[1:]

#: Floors a regression must not go below (measured values in docs/generation.md).
RECALL_FLOORS = {"meta": 0.80, "demo_copy": 0.85, "label_leak": 0.75}
CLEAN_PRECISION_FLOOR = 0.65
CLEAN_KEPT_FLOOR = 0.90


def load_sample(path: Path = SAMPLE) -> list[dict]:
    """The labelled replies, checked: a known class, a marker on every label leak, markers in the reply."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        where = f"{path}: {row.get('id')}"
        if row["class"] not in CLASSES:
            raise ValueError(f"{where}: class {row['class']!r} is not one of {CLASSES}")
        if row["class"] == "label_leak" and not row["marker"]:
            raise ValueError(f"{where}: a label leak needs its leaking words in 'marker'")
        if row["marker"] and row["marker"].casefold() not in row["response"].casefold():
            raise ValueError(f"{where}: marker {row['marker']!r} is not in the reply")
    return rows


def task_spec(name: str) -> TaskSpec:
    """The task a sample reply was generated for (tweet_sarcasm: the task file it was collected with)."""
    path = SAMPLE_DIR / f"{name}.toml"
    return get_task(path) if path.is_file() or name not in REGISTRY else REGISTRY[name]


def kept_texts(row: dict, embed=None) -> list[str]:
    """The texts the engine would keep from one reply: parsed, then filtered with a fresh filter."""
    settings = GenerationConfig(task=task_spec(row["task"]), mode=row["mode"]).filter_settings()
    text_filter = TextFilter(settings, embed)
    demos = [d["text"] for d in row["demonstrations"]]
    candidates = parse_response(row["response"])
    text_filter.prepare(candidates, demos)
    kept = []
    for text in candidates:
        if text_filter.check(text, demos) is None:
            text_filter.add(text)
            kept.append(text)
    return kept


def outcome(row: dict, kept: list[str]) -> str:
    """"kept" (something clean entered the training set), "dropped", or "leaked" (a kept text
    still holds the reply's marker: its label leak or the talk around its text)."""
    marker = row["marker"].casefold()
    if marker and any(marker in text.casefold() for text in kept):
        return "leaked"
    return "kept" if kept else "dropped"


def measure(rows: list[dict], embed=None) -> dict:
    """Counts per class of kept / dropped / leaked replies, and the recall and precision figures."""
    counts: dict[str, Counter] = {c: Counter() for c in CLASSES}
    for row in rows:
        counts[row["class"]][outcome(row, kept_texts(row, embed))] += 1
    n = {c: sum(counts[c].values()) for c in CLASSES}
    recall = {}
    for c in BAD:
        caught = counts[c]["dropped"] + (counts[c]["kept"] if c == "label_leak" else 0)
        recall[c] = caught / n[c] if n[c] else float("nan")
    clean_ok = counts["clean"]["kept"]
    bad_in = sum(counts[c]["kept"] + counts[c]["leaked"] for c in ("meta", "demo_copy")) + counts["label_leak"]["leaked"]
    bad_in += counts["clean"]["leaked"]
    return {
        "counts": counts,
        "n": n,
        "recall": recall,
        "clean_kept": clean_ok / n["clean"] if n["clean"] else float("nan"),
        "clean_precision": clean_ok / (clean_ok + bad_in) if clean_ok + bad_in else float("nan"),
    }


def format_table(result: dict, title: str) -> str:
    n, r = result["n"], result["recall"]
    lines = [f"{title}: {sum(n.values())} replies",
             "| kind | replies | caught (recall) |", "| --- | ---: | ---: |"]
    for c in BAD:
        lines.append(f"| {c} | {n[c]} | {r[c]:.2f} |")
    lines.append(f"| clean: kept | {n['clean']} | {result['clean_kept']:.2f} |")
    lines.append(f"| precision: clean share of what is kept | | {result['clean_precision']:.2f} |")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def measured():
    return measure(load_sample())


@pytest.mark.slow
def test_filters_catch_the_bad_kinds_of_the_labelled_sample(measured):
    for kind, floor in RECALL_FLOORS.items():
        assert measured["recall"][kind] >= floor, (kind, measured["recall"], measured["counts"][kind])


@pytest.mark.slow
def test_filters_keep_the_clean_texts_of_the_labelled_sample(measured):
    assert measured["clean_kept"] >= CLEAN_KEPT_FLOOR, measured["counts"]["clean"]
    assert measured["clean_precision"] >= CLEAN_PRECISION_FLOOR, measured["counts"]


def test_the_labelled_sample_is_large_and_valid():
    rows = load_sample()
    assert len(rows) >= 200
    assert {r["class"] for r in rows} == set(CLASSES)
    assert {r["mode"] for r in rows} == {"zero-shot", "few-shot"}
    assert len({r["id"] for r in rows}) == len(rows)


def test_a_kept_marker_counts_as_a_leak_not_as_kept():
    row = {"marker": "Negative news:", "class": "label_leak"}
    assert outcome(row, ['Negative news: "Shares fell 8% after the profit warning."']) == "leaked"
    assert outcome(row, ["Shares fell 8% after the profit warning."]) == "kept"
    assert outcome({"marker": "", "class": "meta"}, []) == "dropped"


if __name__ == "__main__":
    rows = load_sample(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE)
    print(format_table(measure(rows), "all"))
    for split in sorted({r["split"] for r in rows}):
        print()
        print(format_table(measure([r for r in rows if r["split"] == split]), split))
