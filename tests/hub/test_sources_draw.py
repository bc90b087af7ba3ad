"""The dedup / split / cap / order rules of `subjlab.sources.draw` (the rules of the development subsets)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from subjlab.sources.draw import DrawSettings, dedup_rows, draw
from subjlab.sources.parsers import Parsed
from subjlab.sources.registry import SOURCES, TaskSource


def rows(*pairs, **extra):
    return [{"text": t, "label": lab, "n": i, **extra} for i, (t, lab) in enumerate(pairs)]


def task_source(name="toy", has_split=True, dedup=(), conflicts="drop"):
    return dataclasses.replace(SOURCES["sms_spam"], task=name, has_split=has_split, dedup=dedup, conflicts=conflicts)


def texts(rows_):
    return sorted(r["text"] for r in rows_)


def test_dedup_keeps_the_first_repeat_and_drops_texts_with_two_labels():
    data = rows(("a", "x"), ("b", "x"), ("a", "x"), ("c", "x"), ("c", "y"), ("d", "y"))
    kept, stats = dedup_rows(data)
    assert [r["n"] for r in kept] == [0, 1, 5]
    assert stats == {"dropped_duplicate_rows": 1, "dropped_conflicting_label_rows": 2}
    kept, stats = dedup_rows(data, conflicts="first")
    assert [r["n"] for r in kept] == [0, 1, 3, 5]
    assert stats == {"dropped_duplicate_rows": 2, "dropped_conflicting_label_rows": 0}
    kept, stats = dedup_rows(data, duplicates=False)
    assert [r["n"] for r in kept] == [0, 1, 2, 5]


def test_kept_split_drops_train_texts_found_in_test_and_keeps_every_row_uncapped():
    parsed = Parsed(("x", "y"), splits={"train": rows(("a", "x"), ("b", "y"), ("t1", "x"), ("c", "x")),
                                        "test": rows(("t1", "y"), ("t2", "x"))})
    drawn = draw(task_source(), parsed)
    assert texts(drawn.splits["train"]) == ["a", "b", "c"]
    assert texts(drawn.splits["test"]) == ["t1", "t2"]
    assert drawn.stats["train_rows_dropped_as_in_test"] == 1
    assert drawn.stats["counts"]["train"] == {"total": 3, "per_label": {"x": 2, "y": 1}}
    assert {r["n"] for r in drawn.splits["train"]} == {0, 1, 3}  # rows pass through unchanged


def test_kept_split_caps_per_label_with_the_documented_seeded_shuffle():
    train = rows(*[(f"x{i}", "x") for i in range(20)], *[(f"y{i}", "y") for i in range(3)])
    parsed = Parsed(("x", "y"), splits={"train": train, "test": rows(("t", "x"))})
    drawn = draw(task_source("toy"), parsed, DrawSettings(seed=7, max_train_per_label=5))
    expected = [r for r in train if r["label"] == "x"]
    random.Random("7:toy:train:x").shuffle(expected)
    got = [r for r in drawn.splits["train"] if r["label"] == "x"]
    assert sorted(r["n"] for r in got) == sorted(r["n"] for r in expected[:5])
    assert len([r for r in drawn.splits["train"] if r["label"] == "y"]) == 3


def test_holdout_puts_a_third_per_label_in_test_by_the_seeded_rule():
    pool = rows(*[(f"x{i}", "x") for i in range(10)], *[(f"y{i}", "y") for i in range(7)])
    drawn = draw(task_source(has_split=False, dedup=("pool",)), Parsed(("x", "y"), pool=pool), DrawSettings(seed=3))
    for label, n in (("x", 10), ("y", 7)):
        order = [r for r in pool if r["label"] == label]
        random.Random(f"3:toy:holdout:{label}").shuffle(order)
        test = [r for r in drawn.splits["test"] if r["label"] == label]
        assert sorted(r["n"] for r in test) == sorted(r["n"] for r in order[: n // 3])
    assert texts(drawn.splits["train"] + drawn.splits["test"]) == texts(pool)
    assert not set(texts(drawn.splits["train"])) & set(texts(drawn.splits["test"]))


def test_holdout_is_at_most_500_per_label_and_caps_apply_after_it():
    pool = rows(*[(f"x{i}", "x") for i in range(1800)], *[(f"y{i}", "y") for i in range(30)])
    parsed = Parsed(("x", "y"), pool=pool)
    drawn = draw(task_source(has_split=False), parsed)
    assert drawn.stats["counts"]["test"]["per_label"] == {"x": 500, "y": 10}
    assert drawn.stats["counts"]["train"]["per_label"] == {"x": 1300, "y": 20}
    capped = draw(task_source(has_split=False), parsed, DrawSettings(max_train_per_label=100, max_test_per_label=50))
    assert capped.stats["counts"]["test"]["per_label"] == {"x": 50, "y": 10}
    assert capped.stats["counts"]["train"]["per_label"] == {"x": 100, "y": 20}
    assert set(texts(capped.splits["test"])) <= set(texts(drawn.splits["test"]))  # caps keep the first held-out rows


def test_rows_sharing_a_text_stay_on_one_side_and_alt_rows_follow_the_main_pool():
    # FewRel: one sentence can hold several entity pairs of a relation, and P403 rows share P974 sentences
    pool = rows(*[(f"s{i}", "tributary") for i in range(12)], ("s0", "tributary"), ("s5", "tributary"),
                ("s7", "tributary"), ("c", "country"), ("d", "country"), ("e", "country"))
    alt = rows(("s0", "mouth"), ("s5", "mouth"), ("s7", "mouth"), ("m1", "mouth"), ("m2", "mouth"), ("m3", "mouth"))
    parsed = Parsed(("country", "tributary"), pool=pool, alt={"alt_P403": alt})
    drawn = draw(task_source(has_split=False), parsed, DrawSettings(seed=11))
    side = {}
    for split in ("train", "test"):
        for r in drawn.splits[split] + drawn.alt["alt_P403"][split]:
            assert side.setdefault(r["text"], split) == split, f"{r['text']} on both sides"
    assert len(drawn.splits["train"]) + len(drawn.splits["test"]) == len(pool)
    assert len(drawn.alt["alt_P403"]["train"]) + len(drawn.alt["alt_P403"]["test"]) == len(alt)
    assert drawn.stats["alt_P403"]["pool"] == {"mouth": 6}


def test_a_text_under_two_labels_of_a_pool_without_split_is_dropped():
    parsed = Parsed(("a", "b"), pool=rows(("same", "a"), ("same", "b"), ("x", "a"), ("y", "b"), ("z", "a")))
    drawn = draw(task_source(has_split=False), parsed)
    assert "same" not in texts(drawn.splits["train"] + drawn.splits["test"])
    assert drawn.stats["dedup"] == {"dropped_duplicate_rows": 0, "dropped_conflicting_label_rows": 2}


def test_draw_is_deterministic_and_each_task_has_its_own_random_stream():
    pool = rows(*[(f"x{i}", "x") for i in range(60)], *[(f"y{i}", "y") for i in range(60)])
    parsed = Parsed(("x", "y"), pool=pool)
    one = draw(task_source("one", has_split=False), parsed)
    again = draw(task_source("one", has_split=False), parsed)
    other = draw(task_source("two", has_split=False), parsed)
    assert one.splits == again.splits
    assert texts(one.splits["test"]) != texts(other.splits["test"])
    assert [r["n"] for r in one.splits["train"]] != sorted(r["n"] for r in one.splits["train"])  # shuffled order


def test_rows_outside_the_label_set_are_an_error():
    with pytest.raises(ValueError, match="'z' is not one of"):
        draw(task_source(), Parsed(("x", "y"), splits={"train": rows(("a", "z")), "test": []}))


@pytest.mark.parametrize("field", ["max_train_per_label", "max_test_per_label"])
def test_caps_below_one_are_refused(field):
    with pytest.raises(ValueError, match=field):
        DrawSettings(**{field: 0})


def test_registry_rules_are_consistent():
    for task, source in SOURCES.items():
        assert isinstance(source, TaskSource) and source.task == task
        assert set(source.dedup) <= ({"pool"} if not source.has_split else {"train", "test"})
        assert source.conflicts in ("drop", "first")
