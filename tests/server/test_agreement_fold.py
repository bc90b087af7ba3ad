"""The agreement view keeps each study's label counts between calls (`annotation_server.agreement_fold`):
its figures equal `analysis.agreement` on the export at every step of a workload (new labels, sessions a
platform did not confirm, a label committed behind one already folded in), on SQLite and PostgreSQL; its
closed forms of Fleiss' kappa and Krippendorff's alpha equal the reference implementations."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from sqlalchemy import insert, select, update

from analysis.agreement import AgreementAnalyzer, fleiss_kappa, krippendorff_alpha_nominal
from annotation_server import agreement_fold
from annotation_server.state import get_state
from annotation_server.db import session_scope
from annotation_server.models import Assignment, LabelRecord, Study, Worker, WorkerSession
from subjlab.records import Label

LABELS = ["ham", "spam"]


def _sums(matrix: np.ndarray) -> agreement_fold.Sums:
    """Sums of a count matrix, built label by label as the fold builds them."""
    sums = agreement_fold.Sums(matrix.shape[1])
    for row in matrix:
        counts = [0] * matrix.shape[1]
        for category, n in enumerate(row):
            for _ in range(int(n)):
                sums.move(counts, category, 1)
    return sums


def _reference(fn, matrix):
    try:
        return fn(matrix), None
    except ValueError as exc:
        return None, str(exc)


@pytest.mark.parametrize("seed", range(12))
def test_closed_forms_equal_the_reference_kappa_and_alpha(seed):
    rng = np.random.default_rng(seed)
    items, categories = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    if seed % 3 == 0:  # the same number of labels on every item: Fleiss' kappa is defined
        matrix = rng.multinomial(int(rng.integers(1, 6)), np.ones(categories) / categories, size=items)
    else:
        matrix = np.array([rng.multinomial(int(rng.integers(1, 6)), np.ones(categories) / categories)
                           for _ in range(items)])
    matrix = matrix[:, matrix.sum(axis=0) > 0]  # the reference sees the categories used only
    sums = _sums(matrix)
    for mine, reference in ((agreement_fold.fleiss_kappa(sums), _reference(fleiss_kappa, matrix)),
                            (agreement_fold.krippendorff_alpha(sums), _reference(krippendorff_alpha_nominal, matrix))):
        assert mine[1] == reference[1]
        assert mine[0] == pytest.approx(reference[0], abs=1e-9) if reference[0] is not None else mine[0] is None


def test_taking_labels_out_undoes_adding_them():
    sums, counts = agreement_fold.Sums(3), [0, 0, 0]
    empty = sums.copy()
    for category in (0, 2, 2, 1):
        sums.move(counts, category, 1)
    for category in (1, 2, 0, 2):
        sums.move(counts, category, -1)
    assert counts == [0, 0, 0]
    assert (+sums.by_shape, +sums.sumsq_by_m, sums.per_category, sums.single) == \
           (empty.by_shape, empty.sumsq_by_m, empty.per_category, empty.single)


def _expected(api, name: str) -> dict:
    """What `analysis.agreement` says about the study's export (unconfirmed sessions left out, as exported)."""
    labels = [Label.from_dict(json.loads(line)) for line in api.admin_get(f"/studies/{name}/export?what=labels").text.splitlines()]
    if not labels:
        return {"n_items": 0, "n_labels": 0, "items": []}
    report = AgreementAnalyzer(label_order=LABELS).fit(labels).report_
    return {"n_items": report.n_items, "n_labels": report.n_labels, "mean_agreement": report.mean_agreement,
            "fleiss_kappa": report.fleiss_kappa, "fleiss_kappa_note": report.fleiss_kappa_note,
            "krippendorff_alpha": report.krippendorff_alpha, "krippendorff_alpha_note": report.krippendorff_alpha_note,
            "histogram": [{"agreement": a, "count": c} for a, c in report.distribution()],
            "items": [{"item": it.item, "agreement": it.agreement, "majority": it.majority, "n_labels": it.n_labels}
                      for it in report.items]}


def assert_view_matches_the_analysis(api, name: str, page: int = 3, same_order: bool = True) -> dict:
    """GET /agreement page by page equals `analysis.agreement` on the export (items in the same order, or in
    any order when sessions were left out: the view keeps the order items were first labeled by anyone);
    return the first page."""
    first = api.admin_get(f"/studies/{name}/agreement?limit={page}").json
    items, offset = [], 0
    while True:
        got = api.admin_get(f"/studies/{name}/agreement?offset={offset}&limit={page}").json
        items += got["items"]
        if len(got["items"]) < page:
            break
        offset += page
    expected = _expected(api, name)
    if not same_order:
        items, expected["items"] = (sorted(x, key=lambda it: it["item"]) for x in (items, expected["items"]))
    assert items == expected["items"] and len(first["items"]) == min(page, expected["n_items"])
    for key, value in expected.items():
        if key != "items":
            assert first[key] == (pytest.approx(value, abs=1e-12) if isinstance(value, float) else value), key
    return first


def test_the_view_equals_the_analysis_of_the_export_at_every_step(db_app, api_client):
    api = api_client(db_app)
    api.create_study(name="agr", kind="labeling", task="sms_spam", labels_per_item=3)
    api.add_items("agr", examples=[{"id": f"t{i}", "text": f"message {i}"} for i in range(7)])
    assert assert_view_matches_the_analysis(api, "agr")["n_items"] == 0
    rng = random.Random(3)
    tokens = {}
    for step, worker in enumerate(("w1", "w2", "w3", "w4", "w5")):
        tokens[worker] = token = api.session("agr", worker)
        for _ in range(3 + step):
            r = api.next("agr", token)
            if r.status != 200:
                break
            assert api.answer(r.json["assignment"], token, label=rng.choice(LABELS)).status == 201
        assert_view_matches_the_analysis(api, "agr")
    # a platform does not confirm w2's session: its labels leave the view as they leave the export
    before = api.admin_get("/studies/agr/agreement").json["n_labels"]
    with session_scope(get_state(db_app).engine) as db:
        w2 = db.scalar(select(WorkerSession.id).join(Worker, Worker.id == WorkerSession.worker_id)
                       .where(Worker.external_id == "w2"))
        db.execute(update(WorkerSession).where(WorkerSession.id == w2)
                   .values(check_status="unconfirmed", check_reason="not in the platform's records"))
    assert assert_view_matches_the_analysis(api, "agr", same_order=False)["n_labels"] == before - 4  # w2 gave 4


def test_a_label_committed_behind_one_already_folded_in_is_still_counted(make_app, backend, clock, api_client):
    # PostgreSQL hands out ids at insert and shows rows at commit: a row may appear below an id already read
    app = make_app(db=backend, CLOCK=clock)
    api = api_client(app)
    api.create_study(name="late", kind="labeling", task="sms_spam", labels_per_item=1)
    api.add_items("late", examples=[{"id": f"t{i}", "text": f"message {i}"} for i in range(4)])
    for worker in ("w1", "w2", "w3", "w4"):
        assert api.next("late", api.session("late", worker)).status == 200
    engine = get_state(app).engine
    with session_scope(engine) as db:
        slots = db.scalars(select(Assignment).where(Assignment.status == "leased").order_by(Assignment.id)).all()
        study = db.scalar(select(Study))
    fold = agreement_fold.LabelFold(study.id, study.created_at, LABELS)

    def commit(row_id: int, slot, label: str) -> None:  # an answer's label row, id given, committed now
        with session_scope(engine) as db:
            db.execute(insert(LabelRecord).values(id=row_id, assignment_id=slot.id, study_id=slot.study_id,
                                                  item_id=slot.item_id, worker_id=slot.worker_id, label=label,
                                                  leased_at=slot.leased_at, created_at=clock()))

    def folded() -> int:
        with engine.connect() as conn:
            fold.refresh(conn, clock())
        return fold.sums.n_labels

    commit(10, slots[0], "spam")
    commit(30, slots[1], "ham")
    assert folded() == 2
    commit(20, slots[2], "ham")  # its id was taken before 30's, its commit came after 30 was read
    assert folded() == 3 and fold.sums.per_category == [2, 1]
    clock.advance(agreement_fold.SETTLE_SECONDS + 1)
    assert folded() == 3 and fold.mark == 30 and not fold.recent  # settled: read once, never twice
    commit(40, slots[3], "spam")
    assert folded() == 4 and fold.counts == {s.item_id: ([0, 1] if s in (slots[0], slots[3]) else [1, 0])
                                             for s in slots}
