"""Publishing: exact create_hit requests, one qualification per study, idempotent batches, the cost."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from sqlalchemy import select

from annotation_server.state import get_state
from annotation_server.db import session_scope
from annotation_server.mturk import publish as pub
from annotation_server.mturk.models import MTurkHit, MTurkQualification
from annotation_server.studies import get_study

QUAL = "3QUALIFICATION0000000000000001"
NS = "{http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd}"


def spec(**overrides) -> pub.HitSpec:
    values = dict(title="Is this SMS spam?", description="Label 2 short text messages", keywords="spam,sms,label",
                  reward=Decimal("0.50"), assignments=3, duration_seconds=1800, lifetime_seconds=3 * 86400)
    values.update(overrides)
    return pub.HitSpec(**values)


def expected_create_hit(study, batch: int, url: str = "https://study.example.org/mturk/spam") -> dict:
    """The create_hit request, spelled out field by field (not built by the code under test)."""
    return {
        "MaxAssignments": 3,
        "AutoApprovalDelayInSeconds": 259200,
        "LifetimeInSeconds": 259200,
        "AssignmentDurationInSeconds": 1800,
        "Reward": "0.50",
        "Title": "Is this SMS spam?",
        "Keywords": "spam,sms,label",
        "Description": "Label 2 short text messages",
        "Question": ('<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
                     f'2006-07-14/ExternalQuestion.xsd"><ExternalURL>{url}</ExternalURL>'
                     "<FrameHeight>800</FrameHeight></ExternalQuestion>"),
        "RequesterAnnotation": f"subjlab:spam:{batch}",
        "QualificationRequirements": [
            {"QualificationTypeId": "00000000000000000071", "Comparator": "EqualTo",
             "LocaleValues": [{"Country": "US"}], "ActionsGuarded": "Accept"},
            {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
             "IntegerValues": [95], "ActionsGuarded": "Accept"},
            {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo",
             "IntegerValues": [100], "ActionsGuarded": "Accept"},
            {"QualificationTypeId": QUAL, "Comparator": "DoesNotExist", "ActionsGuarded": "DiscoverPreviewAndAccept"},
        ],
        "UniqueRequestToken": pub.request_token(study, "sandbox", batch),
    }


def expected_qualification(study) -> dict:
    return {"Name": f"subjlab participated spam {pub.study_fingerprint(study)}", "Keywords": "subjlab,participated",
            "Description": "Took part in the subjlab study spam; used to keep returning workers out of it.",
            "QualificationTypeStatus": "Active", "AutoGranted": False}


def test_publish_creates_the_qualification_once_and_each_hit_with_the_exact_request(app, spam_study, stubbed_mturk, hit_response):
    s = stubbed_mturk()
    engine = get_state(app).engine
    with session_scope(engine) as db:
        study = get_study(db, "spam")
        s.stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": QUAL}},
                            expected_qualification(study))
        s.stub.add_response("create_hit", hit_response("3HIT00000000000000000000000000"), expected_create_hit(study, 0))
        s.stub.add_response("create_hit", hit_response("3HIT00000000000000000000000001"), expected_create_hit(study, 1))
        result = pub.publish(db, s.mturk, "spam", "https://study.example.org/", 2, spec())
    assert [(h.batch_index, h.hit_id, h.created) for h in result.hits] == [
        (0, "3HIT00000000000000000000000000", True), (1, "3HIT00000000000000000000000001", True)]
    assert result.qualification_type_id == QUAL and result.external_url == "https://study.example.org/mturk/spam"
    assert result.estimate.total == Decimal("3.60")  # 2 HITs x 3 assignments x ($0.50 + 20%)
    with session_scope(engine) as db:
        rows = db.scalars(select(MTurkHit).order_by(MTurkHit.batch_index)).all()
        assert [(r.hit_id, r.environment, r.reward, r.max_assignments, r.qualification_type_id) for r in rows] == [
            ("3HIT00000000000000000000000000", "sandbox", "0.50", 3, QUAL),
            ("3HIT00000000000000000000000001", "sandbox", "0.50", 3, QUAL)]
        assert rows[0].endpoint == "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
        assert len(db.scalars(select(MTurkQualification)).all()) == 1


def test_publishing_again_creates_only_the_missing_hits(app, spam_study, stubbed_mturk, hit_response):
    s = stubbed_mturk()
    with session_scope(get_state(app).engine) as db:
        study = get_study(db, "spam")
        s.stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": QUAL}},
                            expected_qualification(study))
        s.stub.add_response("create_hit", hit_response("3HIT00000000000000000000000000"), expected_create_hit(study, 0))
        pub.publish(db, s.mturk, "spam", "https://study.example.org", 1, spec())
        again = pub.publish(db, s.mturk, "spam", "https://study.example.org", 1, spec())  # no stub left: no call
        assert [h.created for h in again.hits] == [False] and again.estimate.total == 0
        s.stub.add_response("create_hit", hit_response("3HIT00000000000000000000000002"), expected_create_hit(study, 1))
        more = pub.publish(db, s.mturk, "spam", "https://study.example.org", 2, spec())
    assert [(h.batch_index, h.created) for h in more.hits] == [(0, False), (1, True)]


def test_a_retried_create_whose_first_reply_was_lost_records_the_existing_hit(app, spam_study, stubbed_mturk, hit_response):
    """MTurk refuses a repeated UniqueRequestToken and names the HIT it made: that HIT is recorded, none is added."""
    s = stubbed_mturk()
    with session_scope(get_state(app).engine) as db:
        study = get_study(db, "spam")
        s.stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": QUAL}},
                            expected_qualification(study))
        s.stub.add_client_error("create_hit", service_error_code="RequestError", http_status_code=400,
                                service_message='The HIT with ID "3HITMADEBEFORE0000000000000000" already exists '
                                                "for this UniqueRequestToken.",
                                expected_params=expected_create_hit(study, 0))
        s.stub.add_response("get_hit", hit_response("3HITMADEBEFORE0000000000000000"), {"HITId": "3HITMADEBEFORE0000000000000000"})
        result = pub.publish(db, s.mturk, "spam", "https://study.example.org", 1, spec())
    assert [h.hit_id for h in result.hits] == ["3HITMADEBEFORE0000000000000000"]


def test_throttled_create_hit_is_retried_with_the_same_token(app, spam_study, stubbed_mturk, hit_response):
    s = stubbed_mturk()
    with session_scope(get_state(app).engine) as db:
        study = get_study(db, "spam")
        s.stub.add_response("create_qualification_type", {"QualificationType": {"QualificationTypeId": QUAL}},
                            expected_qualification(study))
        s.stub.add_client_error("create_hit", service_error_code="ThrottlingException", http_status_code=400,
                                expected_params=expected_create_hit(study, 0))
        s.stub.add_response("create_hit", hit_response("3HIT00000000000000000000000000"), expected_create_hit(study, 0))
        result = pub.publish(db, s.mturk, "spam", "https://study.example.org", 1, spec())
    assert result.hits[0].hit_id == "3HIT00000000000000000000000000" and len(s.sleeps) == 1


def test_request_tokens_are_deterministic_unique_per_batch_and_short(app, spam_study):
    with session_scope(get_state(app).engine) as db:
        study = get_study(db, "spam")
        tokens = [pub.request_token(study, "sandbox", i) for i in range(50)]
        assert tokens == [pub.request_token(study, "sandbox", i) for i in range(50)]
    assert len(set(tokens)) == 50 and all(len(t) <= 64 for t in tokens)
    assert pub.request_token(study, "live", 0) != tokens[0]


def test_external_question_is_valid_xml_with_the_escaped_url_and_frame_height():
    url = pub.entry_url("https://study.example.org/base/", "spam.v2")
    xml = pub.external_question(url + "?a=1&b=2", 650)
    root = ET.fromstring(xml)
    assert root.tag == f"{NS}ExternalQuestion"
    assert root.find(f"{NS}ExternalURL").text == "https://study.example.org/base/mturk/spam.v2?a=1&b=2"
    assert root.find(f"{NS}FrameHeight").text == "650"
    with pytest.raises(ValueError, match="https"):
        pub.entry_url("http://study.example.org", "spam")
    assert pub.entry_url("http://127.0.0.1:8000", "spam", allow_http=True) == "http://127.0.0.1:8000/mturk/spam"


def test_cost_estimate_uses_20_percent_below_10_assignments_and_warns_about_40_percent():
    small = pub.estimate_cost(Decimal("0.50"), 9, hits=4)
    assert (small.fee_rate, small.total_rewards, small.total_fees, small.total) == (
        Decimal("0.20"), Decimal("18.00"), Decimal("3.60"), Decimal("21.60"))
    assert small.warnings == ()
    large = pub.estimate_cost(Decimal("0.50"), 10, hits=4)
    assert (large.fee_rate, large.total_fees, large.total) == (Decimal("0.40"), Decimal("8.00"), Decimal("28.00"))
    assert len(large.warnings) == 1 and "10 or more assignments" in large.warnings[0] and "40%" in large.warnings[0]
    assert "$4.00" in large.warnings[0]  # the same 40 assignments in HITs of at most 9 would pay $4.00
    tiny = pub.estimate_cost(Decimal("0.02"), 1, hits=1)
    assert tiny.fee_per_assignment == Decimal("0.01") and "at least $0.01" in tiny.warnings[0]


def test_durations_and_money_are_parsed_strictly():
    assert [pub.parse_duration(t) for t in ("45s", "30m", "1h30m", "3d", "2w", "90")] == [45, 1800, 5400, 259200, 1209600, 90]
    for bad in ("3 days", "1x", "", "m"):
        with pytest.raises(ValueError, match="duration"):
            pub.parse_duration(bad, "--duration")
    assert pub.parse_money("$0.5") == Decimal("0.50")
    for bad in ("0.005", "-1", "abc", "0", "NaN"):
        with pytest.raises(ValueError):
            pub.parse_money(bad)
    with pytest.raises(ValueError, match="lifetime"):
        spec(lifetime_seconds=10)


def test_qualification_policy_is_configurable():
    reqs = pub.QualificationPolicy(locales=("US", "CA-ON"), min_approval_rate=98, min_approved=None).requirements()
    assert reqs == [
        {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
         "LocaleValues": [{"Country": "US"}, {"Country": "CA", "Subdivision": "ON"}], "ActionsGuarded": "Accept"},
        {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
         "IntegerValues": [98], "ActionsGuarded": "Accept"}]
    assert pub.QualificationPolicy(locales=(), min_approval_rate=None, min_approved=None).requirements() == []
    with pytest.raises(ValueError, match="locale"):
        pub.QualificationPolicy(locales=("usa",))


def test_a_closed_study_is_not_published(app, spam_study, stubbed_mturk):
    from annotation_server.studies import close_study

    s = stubbed_mturk()
    with session_scope(get_state(app).engine) as db:
        close_study(db, "spam")
    with session_scope(get_state(app).engine) as db, pytest.raises(ValueError, match="closed"):
        pub.publish(db, s.mturk, "spam", "https://study.example.org", 1, spec())
