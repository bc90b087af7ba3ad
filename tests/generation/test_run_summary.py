"""`generation.run_summary`: where a run's summary goes and what the file holds."""

from __future__ import annotations

import json

from generation.run_summary import RunSummary, summary_path, write_summary


def test_the_summary_sits_beside_the_output_and_says_whether_every_label_is_full(tmp_path):
    out = tmp_path / "sets" / "spam.jsonl"
    assert summary_path(out) == tmp_path / "sets" / "spam.jsonl.summary.json"
    summary = RunSummary(task="sms_spam", mode="zero-shot", backend="local", model="m", out=str(out),
                         per_label_target=2, per_label={"ham": 2, "spam": 1}, written=3, stopped="budget")
    write_summary(summary, summary_path(out))
    saved = json.loads(summary_path(out).read_text(encoding="utf-8"))
    assert saved == {**summary.to_dict(), "complete": False} and saved["per_label"] == {"ham": 2, "spam": 1}
    summary.per_label["spam"] = 2
    write_summary(summary, summary_path(out))  # rewritten in place, no temporary file left behind
    assert json.loads(summary_path(out).read_text(encoding="utf-8"))["complete"] is True
    assert sorted(p.name for p in out.parent.iterdir()) == ["spam.jsonl.summary.json"]
