"""Reviewing: exact MTurk calls, rules, and idempotency (nothing approved, rejected or paid twice)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.mturk import review as rv
from annotation_server.mturk.models import MTurkAction

HIT = "3HIT00000000000000000000000000"
QUAL = "3QUALIFICATION0000000000000001"
A_GOOD, A_BAD = "3ASSIGNMENTGOOD000000000000000", "3ASSIGNMENTBAD0000000000000000"
W_GOOD, W_BAD = "AGOODWORKER0001", "ABADWORKER00002"
SUBMITTED = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def assignment(aid: str, worker: str, status: str = "Submitted") -> dict:
    return {"AssignmentId": aid, "WorkerId": worker, "HITId": HIT, "AssignmentStatus": status,
            "AcceptTime": datetime(2026, 1, 5, 11, 50, tzinfo=timezone.utc), "SubmitTime": SUBMITTED}


LIST_PARAMS = {"HITId": HIT, "MaxResults": 100, "AssignmentStatuses": ["Submitted", "Approved", "Rejected"]}


def test_rules_parse_and_evaluate_without_eval():
    rule = rv.parse_rule("gold>=0.8 and agreement >= 0.5 or seconds<1.5")
    assert str(rule) == "gold>=0.8 and agreement>=0.5 or seconds<1.5"
    assert rule.evaluate({"gold": 0.9, "agreement": 0.6, "seconds": 9})
    assert not rule.evaluate({"gold": 0.9, "agreement": 0.4, "seconds": 9})
    assert rule.evaluate({"gold": 0.1, "agreement": 0.1, "seconds": 1.0})  # `and` binds tighter than `or`
    assert not rule.evaluate({"gold": None, "agreement": 0.9, "seconds": None})  # missing figures are false
    for bad, where in (("gold>=", "number"), ("gold=>0.8", "unexpected"), ("gold 0.8", "operator"), ("__import__('os')", "unexpected"), ("exit>1", "not one of"),
                       ("gold>=0.8 and", "comparison"), ("gold>=0.8 nand units>1", "'and' or 'or'"),
                       ("gold>=0.8; rm", "unexpected"), ("", "empty")):
        with pytest.raises(ValueError, match=where):
            rv.parse_rule(bad)


def test_review_approves_and_rejects_by_rule_once_and_keeps_participants_out(
        db_app, make_spam_study, stubbed_mturk, publish_one, work_through, mturk_entry):
    """On SQLite and PostgreSQL."""
    app, client = db_app, db_app.test_client()
    spam_study = make_spam_study(app)
    s = stubbed_mturk()
    publish_one(app, s)
    work_through(client, spam_study, W_GOOD, correct=True, token=mturk_entry(client, "spam", HIT, A_GOOD, W_GOOD))
    work_through(client, spam_study, W_BAD, correct=False, token=mturk_entry(client, "spam", HIT, A_BAD, W_BAD))
    s.stub.add_response("list_assignments_for_hit",
                        {"Assignments": [assignment(A_GOOD, W_GOOD), assignment(A_BAD, W_BAD)], "NumResults": 2}, LIST_PARAMS)
    s.stub.add_response("approve_assignment", {}, {"AssignmentId": A_GOOD, "RequesterFeedback": "Thanks for your work."})
    s.stub.add_response("reject_assignment", {}, {"AssignmentId": A_BAD, "RequesterFeedback": "Thanks for your work."})
    for worker in (W_GOOD, W_BAD):
        s.stub.add_response("associate_qualification_with_worker", {},
                            {"QualificationTypeId": QUAL, "WorkerId": worker, "IntegerValue": 1, "SendNotification": False})
    engine = get_state(app).engine
    with session_scope(engine) as db:
        result = rv.review(db, s.mturk, "spam", approve_if=rv.parse_rule("gold>=0.8"), reject_if=rv.parse_rule("gold<0.5"),
                           feedback="Thanks for your work.")
    rows = {r.worker_id: r for r in result.rows}
    assert (result.approved, result.rejected, result.qualified) == (1, 1, 2)
    assert rows[W_GOOD].decision == "approve" and rows[W_GOOD].quality.gold_accuracy == 1.0
    assert rows[W_BAD].decision == "reject" and rows[W_BAD].quality.gold_accuracy == 0.0
    assert rows[W_GOOD].quality.units == rows[W_BAD].quality.units == 2  # 2 labels + 1 attention check each
    # again: MTurk now reports them reviewed; nothing is approved, rejected or qualified twice
    s.stub.add_response("list_assignments_for_hit", {"Assignments": [
        assignment(A_GOOD, W_GOOD, "Approved"), assignment(A_BAD, W_BAD, "Rejected")]}, LIST_PARAMS)
    with session_scope(engine) as db:
        again = rv.review(db, s.mturk, "spam", approve_if=rv.parse_rule("gold>=0.8"), reject_if=rv.parse_rule("gold<0.5"),
                          feedback="Thanks for your work.")
        assert (again.approved, again.rejected, again.qualified) == (0, 0, 0)
        kinds = sorted((a.kind, a.state) for a in db.scalars(select(MTurkAction)))
    assert kinds == [("approve", "done"), ("qualify", "done"), ("qualify", "done"), ("reject", "done")]


def test_approving_twice_calls_mturk_once_and_a_rejection_cannot_follow(app, spam_study, stubbed_mturk, publish_one):
    s = stubbed_mturk()
    publish_one(app, s)
    s.stub.add_response("list_assignments_for_hit", {"Assignments": [assignment(A_GOOD, W_GOOD)]}, LIST_PARAMS)
    s.stub.add_response("approve_assignment", {}, {"AssignmentId": A_GOOD})
    with session_scope(get_state(app).engine) as db:
        rv.sync_assignments(db, s.mturk, "spam")
        assert rv.approve(db, s.mturk, "spam", A_GOOD).outcome == "done"
        assert rv.approve(db, s.mturk, "spam", A_GOOD).outcome == "already"
        with pytest.raises(ValueError, match="already approved"):
            rv.reject(db, s.mturk, "spam", A_GOOD, "too late")
        with pytest.raises(ValueError, match="feedback"):
            rv.reject(db, s.mturk, "spam", A_BAD, "  ")


def test_an_approval_that_went_through_before_an_error_is_recorded_not_repeated(app, spam_study, stubbed_mturk, publish_one):
    s = stubbed_mturk()
    publish_one(app, s)
    s.stub.add_client_error("approve_assignment", service_error_code="ServiceFault", http_status_code=500,
                            expected_params={"AssignmentId": A_GOOD})
    s.stub.add_response("get_assignment", {"Assignment": {"AssignmentId": A_GOOD, "WorkerId": W_GOOD, "HITId": HIT,
                                                          "AssignmentStatus": "Approved"}}, {"AssignmentId": A_GOOD})
    with session_scope(get_state(app).engine) as db:
        assert rv.approve(db, s.mturk, "spam", A_GOOD).outcome == "recovered"
        assert rv.approve(db, s.mturk, "spam", A_GOOD).outcome == "already"


def test_a_bonus_is_paid_once_with_a_deterministic_token(app, spam_study, stubbed_mturk, publish_one):
    s = stubbed_mturk()
    publish_one(app, s)
    s.stub.add_response("list_assignments_for_hit", {"Assignments": [assignment(A_GOOD, W_GOOD, "Approved")]}, LIST_PARAMS)
    with session_scope(get_state(app).engine) as db:
        rv.sync_assignments(db, s.mturk, "spam")
        from annotation_server.studies import get_study

        token = rv.bonus_token(get_study(db, "spam"), A_GOOD)
        assert token == rv.bonus_token(get_study(db, "spam"), A_GOOD) and len(token) <= 64
        bonus_params = {"WorkerId": W_GOOD, "BonusAmount": "0.25", "AssignmentId": A_GOOD, "Reason": "Careful work",
                        "UniqueRequestToken": token}
        # first attempt: MTurk fails and did not pay -> nothing recorded, the error is reported
        s.stub.add_client_error("send_bonus", service_error_code="ServiceFault", http_status_code=500,
                                expected_params=bonus_params)
        s.stub.add_response("list_bonus_payments", {"BonusPayments": []}, {"AssignmentId": A_GOOD, "MaxResults": 100})
        with pytest.raises(ValueError, match="refused the bonus"):
            rv.bonus(db, s.mturk, "spam", A_GOOD, Decimal("0.25"), "Careful work")
        # retry: the same token goes out again, then never a second payment
        s.stub.add_response("send_bonus", {}, bonus_params)
        assert rv.bonus(db, s.mturk, "spam", A_GOOD, Decimal("0.25"), "Careful work").outcome == "done"
        assert rv.bonus(db, s.mturk, "spam", A_GOOD, Decimal("0.25"), "Careful work").outcome == "already"
        with pytest.raises(ValueError, match="already has a bonus of \\$0.25"):
            rv.bonus(db, s.mturk, "spam", A_GOOD, Decimal("1.00"), "More")
        with pytest.raises(ValueError, match="not recorded"):
            rv.bonus(db, s.mturk, "spam", "3UNKNOWNASSIGNMENT000000000000", Decimal("0.25"), "x")


def test_a_bonus_paid_despite_an_error_reply_is_recorded_not_paid_again(app, spam_study, stubbed_mturk, publish_one):
    s = stubbed_mturk()
    publish_one(app, s)
    s.stub.add_response("list_assignments_for_hit", {"Assignments": [assignment(A_GOOD, W_GOOD, "Approved")]}, LIST_PARAMS)
    s.stub.add_client_error("send_bonus", service_error_code="ServiceFault", http_status_code=500)
    s.stub.add_response("list_bonus_payments", {"BonusPayments": [
        {"WorkerId": W_GOOD, "BonusAmount": "0.25", "AssignmentId": A_GOOD, "Reason": "Careful work",
         "GrantTime": SUBMITTED}]}, {"AssignmentId": A_GOOD, "MaxResults": 100})
    with session_scope(get_state(app).engine) as db:
        rv.sync_assignments(db, s.mturk, "spam")
        assert rv.bonus(db, s.mturk, "spam", A_GOOD, Decimal("0.25"), "Careful work").outcome == "recovered"
        assert rv.bonus(db, s.mturk, "spam", A_GOOD, Decimal("0.25"), "Careful work").outcome == "already"


def test_expire_and_delete_each_hit_once(app, spam_study, stubbed_mturk, publish_one, hit_response):
    s = stubbed_mturk()
    publish_one(app, s)
    s.stub.add_response("update_expiration_for_hit", {},
                        {"HITId": HIT, "ExpireAt": datetime(2015, 1, 1, tzinfo=timezone.utc)})
    s.stub.add_response("delete_hit", {}, {"HITId": HIT})
    s.stub.add_response("get_hit", hit_response(HIT, status="Reviewable"), {"HITId": HIT})
    with session_scope(get_state(app).engine) as db:
        assert [o.outcome for o in rv.expire(db, s.mturk, "spam")] == ["done"]
        assert [o.outcome for o in rv.expire(db, s.mturk, "spam")] == ["already"]
        assert [o.outcome for o in rv.delete(db, s.mturk, "spam", [HIT])] == ["done"]
        assert [o.outcome for o in rv.delete(db, s.mturk, "spam")] == ["already"]
        with pytest.raises(ValueError, match="not a sandbox HIT"):
            rv.expire(db, s.mturk, "spam", ["3SOMEONEELSESHIT00000000000000"])
        status = rv.hit_statuses(db, s.mturk, "spam")
    assert [(h.hit_id, h.status, h.available) for h in status] == [(HIT, "Reviewable", 3)]
