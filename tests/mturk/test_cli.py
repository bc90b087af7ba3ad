"""`subjlab mturk ...` end to end against a loopback stand-in of the MTurk API (real botocore, real HTTP)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from annotation_server.app import get_state
from annotation_server.db import session_scope
from annotation_server.mturk.models import MTurkHit
from subjlab.cli import cli

EXPIRES = 1893456000  # 2030-01-01, epoch seconds as the JSON protocol sends timestamps


@pytest.fixture
def db_url(app, spam_study) -> str:
    return get_state(app).settings.database_url


def create_hit_replies(standin) -> None:
    counter = iter(range(100))
    standin.replies["CreateQualificationType"] = lambda body: (200, {"QualificationType": {
        "QualificationTypeId": "3QUALIFICATION0000000000000001", "Name": body["Name"]}})
    standin.replies["CreateHIT"] = lambda body: (200, {"HIT": {
        "HITId": f"3HIT{next(counter):026d}", "HITTypeId": "3TYPE0000000000000000000000000",
        "HITGroupId": "3GROUP000000000000000000000000", "HITStatus": "Assignable", "Expiration": EXPIRES}})


PUBLISH = ["mturk", "publish", "--study", "spam", "--url", "http://127.0.0.1:8000", "--reward", "0.50",
           "--title", "Is this SMS spam?", "--description", "Label 2 short messages", "--keywords", "spam,sms",
           "--duration", "20m", "--lifetime", "2d", "--min-approved", "0"]


def test_publish_talks_to_the_endpoint_given_and_is_safe_to_rerun(db_url, mturk_standin, aws_test_credentials):
    create_hit_replies(mturk_standin)
    runner = CliRunner()
    args = PUBLISH + ["--hits", "2", "--assignments", "3", "--db", db_url, "--endpoint-url", mturk_standin.url]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "2 HIT(s) x 3 assignment(s) = 6 assignments at $0.50" in result.output
    assert "rewards $3.00 + MTurk fees $0.60 (20%, $0.10 per assignment) = $3.60" in result.output
    hits = mturk_standin.calls("CreateHIT")
    assert len(hits) == 2 and len(mturk_standin.calls("CreateQualificationType")) == 1
    first = hits[0]
    assert "<ExternalURL>http://127.0.0.1:8000/mturk/spam</ExternalURL><FrameHeight>800</FrameHeight>" in first["Question"]
    assert (first["Reward"], first["MaxAssignments"], first["AssignmentDurationInSeconds"], first["LifetimeInSeconds"]) == (
        "0.50", 3, 1200, 172800)
    assert [q["QualificationTypeId"] for q in first["QualificationRequirements"]] == [
        "00000000000000000071", "000000000000000000L0", "3QUALIFICATION0000000000000001"]  # --min-approved 0: none
    assert hits[0]["UniqueRequestToken"] != hits[1]["UniqueRequestToken"]
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert len(mturk_standin.calls("CreateHIT")) == 2 and "existing" in again.output  # nothing new created
    engine_rows = _hits(db_url)
    assert [(h.batch_index, h.environment, h.endpoint) for h in engine_rows] == [
        (0, "sandbox", mturk_standin.url), (1, "sandbox", mturk_standin.url)]


def _hits(db_url: str):
    from annotation_server.db import make_engine

    engine = make_engine(db_url, pool_size=1)
    try:
        with session_scope(engine) as db:
            return db.scalars(select(MTurkHit).order_by(MTurkHit.batch_index)).all()
    finally:
        engine.dispose()


def test_the_mturk_endpoint_variable_replaces_the_default(db_url, mturk_standin, aws_test_credentials, monkeypatch):
    create_hit_replies(mturk_standin)
    monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", mturk_standin.url)
    runner = CliRunner()
    assert runner.invoke(cli, PUBLISH + ["--db", db_url]).exit_code == 0
    mturk_standin.replies["GetHIT"] = lambda body: (200, {"HIT": {
        "HITId": body["HITId"], "HITStatus": "Assignable", "MaxAssignments": 9, "NumberOfAssignmentsAvailable": 7,
        "NumberOfAssignmentsPending": 1, "NumberOfAssignmentsCompleted": 1, "Expiration": EXPIRES}})
    result = runner.invoke(cli, ["mturk", "status", "--study", "spam", "--db", db_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert f"MTurk endpoint: {mturk_standin.url} (from AWS_ENDPOINT_URL_MTURK; sandbox)" in result.stderr
    status = json.loads(result.stdout)
    assert [(h["status"], h["available"], h["pending"], h["completed"]) for h in status["hits"]] == [("Assignable", 7, 1, 1)]
    assert mturk_standin.calls("GetHIT") == [{"HITId": "3HIT00000000000000000000000000"}]


def test_live_asks_for_confirmation_after_printing_the_cost(db_url, mturk_standin, aws_test_credentials):
    create_hit_replies(mturk_standin)
    runner = CliRunner()
    args = PUBLISH + ["--live", "--assignments", "10", "--db", db_url, "--endpoint-url", mturk_standin.url]
    refused = runner.invoke(cli, args, input="n\n")
    assert refused.exit_code == 1
    assert "LIVE marketplace for $7.00" in refused.output  # 10 x $0.50 + 40% commission
    assert "HITs with 10 or more assignments pay a 40% commission instead of 20%" in refused.output
    assert mturk_standin.requests == []
    accepted = runner.invoke(cli, args + ["--yes"])
    assert accepted.exit_code == 0, accepted.output
    assert len(mturk_standin.calls("CreateHIT")) == 1 and _hits(db_url)[0].environment == "live"


def test_review_by_rule_and_a_second_approve_sends_nothing(app, client, db_url, mturk_standin, aws_test_credentials,
                                                          spam_study, work_through, mturk_entry):
    create_hit_replies(mturk_standin)
    runner = CliRunner()
    assert runner.invoke(cli, PUBLISH + ["--db", db_url, "--endpoint-url", mturk_standin.url]).exit_code == 0
    token = mturk_entry(client, "spam", _hits(db_url)[0].hit_id, "3ASSIGNMENTGOOD000000000000000", "AGOODWORKER0001")
    work_through(client, spam_study, "AGOODWORKER0001", correct=True, token=token)
    mturk_standin.replies["ListAssignmentsForHIT"] = lambda body: (200, {"NumResults": 1, "Assignments": [{
        "AssignmentId": "3ASSIGNMENTGOOD000000000000000", "WorkerId": "AGOODWORKER0001", "HITId": body["HITId"],
        "AssignmentStatus": "Submitted", "AcceptTime": EXPIRES - 900, "SubmitTime": EXPIRES - 600}]})
    mturk_standin.replies["ApproveAssignment"] = lambda body: (200, {})
    mturk_standin.replies["AssociateQualificationWithWorker"] = lambda body: (200, {})
    common = ["--study", "spam", "--db", db_url, "--endpoint-url", mturk_standin.url]
    result = runner.invoke(cli, ["mturk", "review", *common, "--approve-if", "gold>=0.8", "--format", "json"])
    assert result.exit_code == 0, result.output
    review = json.loads(result.stdout)
    assert (review["approved"], review["qualified"]) == (1, 1)
    assert review["assignments"][0]["gold_accuracy"] == 1.0 and review["assignments"][0]["outcome"] == "done"
    assert mturk_standin.calls("ApproveAssignment") == [{"AssignmentId": "3ASSIGNMENTGOOD000000000000000"}]
    assert mturk_standin.calls("AssociateQualificationWithWorker") == [{
        "QualificationTypeId": "3QUALIFICATION0000000000000001", "WorkerId": "AGOODWORKER0001",
        "IntegerValue": 1, "SendNotification": False}]
    again = runner.invoke(cli, ["mturk", "approve", *common, "3ASSIGNMENTGOOD000000000000000"])
    assert again.exit_code == 0 and "already" in again.output
    assert len(mturk_standin.calls("ApproveAssignment")) == 1
    bad_rule = runner.invoke(cli, ["mturk", "review", *common, "--approve-if", "gold>=__import__"])
    assert bad_rule.exit_code == 2 and "error: rule" in bad_rule.output


def test_missing_credentials_and_mturk_refusals_are_one_line_errors(db_url, mturk_standin, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    runner = CliRunner()
    result = runner.invoke(cli, PUBLISH + ["--db", db_url, "--endpoint-url", mturk_standin.url])
    assert result.exit_code == 2 and "error: MTurk: Unable to locate credentials" in result.output
    assert "Traceback" not in result.output
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTONLY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-only-secret")
    mturk_standin.replies["CreateQualificationType"] = lambda body: (400, {
        "__type": "RequestError", "Message": "You do not have enough funds."})
    result = runner.invoke(cli, PUBLISH + ["--db", db_url, "--endpoint-url", mturk_standin.url])
    assert result.exit_code == 2 and "You do not have enough funds" in result.output, result.output
