"""Simulated crowds for server tests: answer everything the server gives a worker; a small quality study."""

from __future__ import annotations


def answer_everything(api, clock, study: str, worker: str, seconds: float, choose) -> int:
    """Answer every unit the server gives `worker` through the JSON API test client `api`, advancing
    `clock` by `seconds` per unit; `choose(assignment)` returns the answer body. Returns the count and
    asserts the server ends with 204 (nothing left)."""
    token = api.session(study, worker)
    n = 0
    while (nxt := api.next(study, token)).status == 200:
        clock.advance(seconds)
        assert api.answer(nxt.json["assignment"], token, **choose(nxt.json)).status == 201
        n += 1
    assert nxt.status == 204, nxt.text
    return n


#: The workers of `answer_quality_study`: (worker id, seconds per unit, answers truly).
QUALITY_WORKERS = (("careful-1", 6.0, True), ("careful-2", 6.0, True), ("careless", 6.0, False), ("hasty", 0.5, True))


def answer_quality_study(api, clock, data_dir, name: str = "qc") -> None:
    """Build labeling study `name` through the JSON API test client `api` and answer all of it.

    6 real SMS-spam test messages, 4 labels each; 2 gold items and 1 attention check (real messages too)
    every 2nd unit. `careful-1` and `careful-2` answer truly at 6 s a unit, `hasty` truly at 0.5 s,
    `careless` falsely at 6 s (so it fails the attention check and every gold item); `clock` advances.
    """
    from subjlab.data import load_split
    from subjlab.tasks import REGISTRY

    flip = {"ham": "spam", "spam": "ham"}
    rows = load_split(REGISTRY["sms_spam"], "test", data_dir, limit_per_label=5, seed=7)
    ham = [r for r in rows if r.label == "ham"]
    spam = [r for r in rows if r.label == "spam"]
    items, checks = ham[:3] + spam[:3], [ham[3], spam[3], ham[4]]
    gold = [{"id": f"gold-{checks[0].id}", "text": checks[0].text, "answer": checks[0].label},
            {"id": f"gold-{checks[1].id}", "text": checks[1].text, "answer": checks[1].label},
            {"id": f"attention-{checks[2].id}", "text": checks[2].text, "answer": checks[2].label}]
    assert api.create_study(name=name, kind="labeling", task="sms_spam", labels_per_item=4, gold_every=2).status == 201
    assert api.add_items(name, examples=[{"id": e.id, "text": e.text} for e in items], gold=gold).status == 201
    truth = {e.text: e.label for e in items + checks}
    for worker, seconds, honest in QUALITY_WORKERS:
        def choose(a, honest=honest):
            label = truth[a["item"]["text"]]
            return {"label": label if honest else flip[label]}

        assert answer_everything(api, clock, name, worker, seconds, choose) == 9  # 6 items + 3 checks
