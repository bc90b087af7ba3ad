"""Publishing a study on MTurk: ExternalQuestion HITs, qualifications, request tokens, cost estimate.

A HIT shows the study's entry page `https://PUBLIC-HOST/mturk/<study>` in MTurk's frame (an
ExternalQuestion). `publish(..., hits=N)` makes sure the study has N HITs in the environment: batch
indices already recorded are skipped, and every `create_hit` carries a deterministic
`UniqueRequestToken` derived from (study, environment, batch index), so a call retried after a timeout
or a crash never creates a second HIT: MTurk answers "already exists" with the HIT id, and we record
that HIT instead.

Workers who already took part are kept out by a qualification type per study ("took part in
<study>"), created once and required to be absent (`DoesNotExist`); `review` assigns it to every
worker seen in an assignment.

Fees (MTurk pricing): 20% commission on rewards and bonuses, 40% for HITs with 10 or more assignments,
at least $0.01 per assignment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Sequence
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from botocore.exceptions import ClientError
from sqlalchemy import select
from sqlmodel import Session

from annotation_server.clock import iso, utcnow
from annotation_server.models import Study
from annotation_server.mturk.client import MTurk, error_message
from annotation_server.mturk.models import MTurkHit, MTurkQualification
from annotation_server.studies import get_study

EXTERNAL_QUESTION_XMLNS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"
#: MTurk system qualification types.
LOCALE_QUALIFICATION = "00000000000000000071"
APPROVAL_RATE_QUALIFICATION = "000000000000000000L0"
NUMBER_APPROVED_QUALIFICATION = "00000000000000000040"

COMMISSION = Decimal("0.20")
COMMISSION_LARGE = Decimal("0.40")
LARGE_HIT_ASSIGNMENTS = 10
MIN_FEE = Decimal("0.01")
CENT = Decimal("0.01")

MIN_SECONDS, MAX_SECONDS = 30, 365 * 24 * 3600
MAX_AUTO_APPROVAL = 30 * 24 * 3600
DEFAULT_AUTO_APPROVAL = 3 * 24 * 3600
DEFAULT_FRAME_HEIGHT = 800

_DURATION_RE = re.compile(r"(\d+)\s*([wdhms])", re.IGNORECASE)
_UNITS = {"w": 7 * 24 * 3600, "d": 24 * 3600, "h": 3600, "m": 60, "s": 1}
_LOCALE_RE = re.compile(r"^([A-Z]{2})(?:-([A-Z0-9]{1,3}))?$")
_HIT_ID_RE = re.compile(r"\b([A-Z0-9]{30})\b")


def parse_duration(text: str | int, field: str = "duration") -> int:
    """Return seconds for "90", "90s", "30m", "1h30m", "3d", "2w"; ValueError naming `field` otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        seconds = text
    else:
        raw = str(text).strip().replace(" ", "")
        if raw.isdigit():
            seconds = int(raw)
        else:
            parts = _DURATION_RE.findall(raw)
            if not parts or "".join(n + u for n, u in parts).lower() != raw.lower():
                raise ValueError(f"{field}: {str(text)[:40]!r} is not a duration (examples: 45s, 30m, 1h30m, 3d)")
            seconds = sum(int(n) * _UNITS[u.lower()] for n, u in parts)
    if seconds < 0:
        raise ValueError(f"{field} must not be negative")
    return seconds


def parse_money(text: str | Decimal | float, field: str = "reward", minimum: Decimal = CENT) -> Decimal:
    """Return a dollar amount with at most 2 decimals (at least `minimum`); ValueError otherwise."""
    try:
        value = Decimal(str(text).strip().lstrip("$"))
    except InvalidOperation:
        raise ValueError(f"{field}: {str(text)[:40]!r} is not a dollar amount (example: 0.50)") from None
    if not value.is_finite() or value != value.quantize(CENT):
        raise ValueError(f"{field}: {str(text)[:40]!r} must be a dollar amount with at most 2 decimals")
    if value < minimum:
        raise ValueError(f"{field} must be at least ${minimum}, got ${value}")
    return value.quantize(CENT)


def money(value: Decimal) -> str:
    """Format dollars as MTurk wants them ("0.50")."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class QualificationPolicy:
    """Who may work on the HITs: locales (ISO country, or country-subdivision like "US-NY"), minimum
    approval rate (percent) and minimum number of approved HITs. None / empty disables a requirement."""

    locales: tuple[str, ...] = ("US",)
    min_approval_rate: int | None = 95
    min_approved: int | None = 100

    def __post_init__(self) -> None:
        for loc in self.locales:
            if not _LOCALE_RE.match(loc):
                raise ValueError(f"locale {loc!r} must be an ISO 3166 country code like US or US-NY")
        if self.min_approval_rate is not None and not 0 <= self.min_approval_rate <= 100:
            raise ValueError(f"min approval rate must be a percentage (0-100), got {self.min_approval_rate}")
        if self.min_approved is not None and self.min_approved < 0:
            raise ValueError(f"min approved HITs must not be negative, got {self.min_approved}")

    def requirements(self, exclude_qualification_id: str | None = None) -> list[dict[str, Any]]:
        """Return the `QualificationRequirements` list for create_hit."""
        reqs: list[dict[str, Any]] = []
        if self.locales:
            values = []
            for loc in self.locales:
                country, subdivision = _LOCALE_RE.match(loc).groups()
                values.append({"Country": country, **({"Subdivision": subdivision} if subdivision else {})})
            reqs.append({"QualificationTypeId": LOCALE_QUALIFICATION, "Comparator": "EqualTo" if len(values) == 1 else "In",
                         "LocaleValues": values, "ActionsGuarded": "Accept"})
        if self.min_approval_rate:
            reqs.append({"QualificationTypeId": APPROVAL_RATE_QUALIFICATION, "Comparator": "GreaterThanOrEqualTo",
                         "IntegerValues": [self.min_approval_rate], "ActionsGuarded": "Accept"})
        if self.min_approved:
            reqs.append({"QualificationTypeId": NUMBER_APPROVED_QUALIFICATION, "Comparator": "GreaterThanOrEqualTo",
                         "IntegerValues": [self.min_approved], "ActionsGuarded": "Accept"})
        if exclude_qualification_id:
            reqs.append({"QualificationTypeId": exclude_qualification_id, "Comparator": "DoesNotExist",
                         "ActionsGuarded": "DiscoverPreviewAndAccept"})
        return reqs


@dataclass(frozen=True)
class HitSpec:
    """What each HIT of a batch looks like (validated on creation; ValueError names the field)."""

    title: str
    description: str
    reward: Decimal
    assignments: int
    duration_seconds: int
    lifetime_seconds: int
    keywords: str = ""
    auto_approval_seconds: int = DEFAULT_AUTO_APPROVAL
    frame_height: int = DEFAULT_FRAME_HEIGHT
    qualifications: QualificationPolicy = field(default_factory=QualificationPolicy)

    def __post_init__(self) -> None:
        if not self.title.strip() or len(self.title) > 128:
            raise ValueError("title must be 1-128 characters")
        if not self.description.strip() or len(self.description) > 2000:
            raise ValueError("description must be 1-2000 characters")
        if len(self.keywords) > 1000:
            raise ValueError("keywords must be at most 1000 characters")
        if not 1 <= self.assignments <= 1_000_000:
            raise ValueError(f"assignments must be at least 1, got {self.assignments}")
        if self.reward < CENT:
            raise ValueError(f"reward must be at least $0.01, got ${self.reward}")
        for name, value in (("duration", self.duration_seconds), ("lifetime", self.lifetime_seconds)):
            if not MIN_SECONDS <= value <= MAX_SECONDS:
                raise ValueError(f"{name} must be between 30 seconds and 365 days, got {value} s")
        if not 0 <= self.auto_approval_seconds <= MAX_AUTO_APPROVAL:
            raise ValueError(f"auto-approval delay must be between 0 and 30 days, got {self.auto_approval_seconds} s")
        if not 100 <= self.frame_height <= 4000 and self.frame_height != 0:
            raise ValueError(f"frame height must be 0 (full window) or 100-4000 pixels, got {self.frame_height}")


@dataclass(frozen=True)
class CostEstimate:
    """What a batch costs: rewards plus MTurk's commission, with warnings worth reading first."""

    hits: int
    assignments_per_hit: int
    reward: Decimal
    fee_rate: Decimal
    fee_per_assignment: Decimal
    total_rewards: Decimal
    total_fees: Decimal
    total: Decimal
    warnings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the estimate with dollar amounts as strings."""
        return {"hits": self.hits, "assignments_per_hit": self.assignments_per_hit, "reward": money(self.reward),
                "fee_rate": str(self.fee_rate), "fee_per_assignment": money(self.fee_per_assignment),
                "total_rewards": money(self.total_rewards), "total_fees": money(self.total_fees),
                "total": money(self.total), "warnings": list(self.warnings)}

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        n = self.hits * self.assignments_per_hit
        out = [
            f"{self.hits} HIT(s) x {self.assignments_per_hit} assignment(s) = {n} assignments at ${money(self.reward)}",
            f"rewards ${money(self.total_rewards)} + MTurk fees ${money(self.total_fees)} "
            f"({int(self.fee_rate * 100)}%, ${money(self.fee_per_assignment)} per assignment) = ${money(self.total)}",
        ]
        return out + [f"warning: {w}" for w in self.warnings]


def commission_rate(assignments_per_hit: int) -> Decimal:
    """MTurk's commission on rewards: 20%, or 40% for HITs with 10 or more assignments."""
    return COMMISSION_LARGE if assignments_per_hit >= LARGE_HIT_ASSIGNMENTS else COMMISSION


def estimate_cost(reward: Decimal, assignments_per_hit: int, hits: int = 1) -> CostEstimate:
    """Return the CostEstimate for `hits` HITs of `assignments_per_hit` assignments paying `reward` each."""
    if hits < 0 or assignments_per_hit < 1:
        raise ValueError("hits must be >= 0 and assignments per HIT >= 1")
    rate = commission_rate(assignments_per_hit)
    fee = max(MIN_FEE, (reward * rate).quantize(CENT, rounding=ROUND_HALF_UP))
    n = hits * assignments_per_hit
    rewards, fees = reward * n, fee * n
    warnings: list[str] = []
    if assignments_per_hit >= LARGE_HIT_ASSIGNMENTS:
        cheaper = estimate_cost(reward, LARGE_HIT_ASSIGNMENTS - 1, 1).fee_per_assignment * n
        warnings.append(
            f"{assignments_per_hit} assignments per HIT: HITs with 10 or more assignments pay a 40% commission "
            f"instead of 20% (${money(fees)} in fees here); batches of at most 9 assignments per HIT would pay "
            f"${money(cheaper)}")
    if reward * rate < MIN_FEE:
        warnings.append(f"the commission is at least $0.01 per assignment, more than {int(rate * 100)}% of ${money(reward)}")
    return CostEstimate(hits=hits, assignments_per_hit=assignments_per_hit, reward=reward, fee_rate=rate,
                        fee_per_assignment=fee, total_rewards=rewards, total_fees=fees, total=rewards + fees,
                        warnings=tuple(warnings))


def entry_url(public_url: str, study_name: str, allow_http: bool = False) -> str:
    """Return the study's MTurk entry page URL `<public_url>/mturk/<study>` (https required unless allow_http)."""
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"--url {public_url[:80]!r} must be the public base URL of the server, like https://study.example.org")
    if parts.scheme != "https" and not allow_http:
        raise ValueError(f"--url {public_url[:80]!r}: MTurk only shows https pages in its frame; use an https URL")
    if parts.query or parts.fragment:
        raise ValueError(f"--url {public_url[:80]!r} must not have a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/mturk/{quote(study_name, safe='')}"


def external_question(url: str, frame_height: int = DEFAULT_FRAME_HEIGHT) -> str:
    """Return the ExternalQuestion XML showing `url` in a frame of `frame_height` pixels (0 = full window)."""
    return (f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_XMLNS}">'
            f"<ExternalURL>{escape(url)}</ExternalURL><FrameHeight>{int(frame_height)}</FrameHeight>"
            "</ExternalQuestion>")


def study_fingerprint(study: Study) -> str:
    """A short stable hash of the study's identity (id, name, creation time): differs for a study re-created
    under the same name, so tokens and qualification names never collide across databases."""
    basis = f"{study.id}|{study.name}|{iso(study.created_at)}"
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def request_token(study: Study, environment: str, batch_index: int) -> str:
    """Return the deterministic UniqueRequestToken of a study's HIT number `batch_index` (<= 64 chars)."""
    digest = hashlib.sha256(f"{study_fingerprint(study)}|{environment}|hit|{batch_index}".encode()).hexdigest()[:32]
    return f"subjlab-{digest}-{batch_index}"[:64]


def qualification_name(study: Study) -> str:
    """Name of the study's "already took part" qualification type (unique per requester account)."""
    return f"subjlab participated {study.name} {study_fingerprint(study)}"


def _as_aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def ensure_qualification(db: Session, mturk: MTurk, study: Study, now: datetime | None = None) -> MTurkQualification:
    """Return the study's participation qualification in this environment, creating it on MTurk once."""
    row = db.scalars(select(MTurkQualification).where(MTurkQualification.study_id == study.id,
                                                      MTurkQualification.environment == mturk.environment)).first()
    if row is not None:
        return row
    name = qualification_name(study)
    try:
        resp = mturk.call(
            "create_qualification_type", Name=name, Keywords="subjlab,participated",
            Description=f"Took part in the subjlab study {study.name}; used to keep returning workers out of it.",
            QualificationTypeStatus="Active", AutoGranted=False)
        qual_id = resp["QualificationType"]["QualificationTypeId"]
    except ClientError as exc:
        try:  # created before, but its reply was lost? (names are unique per requester)
            qual_id = _find_qualification(mturk, name)
        except ClientError:
            qual_id = None
        if qual_id is None:
            raise ValueError(f"MTurk refused to create the qualification type {name!r}: {error_message(exc)}") from None
    row = MTurkQualification(study_id=study.id, environment=mturk.environment, qualification_type_id=qual_id,
                             name=name, created_at=now or utcnow())
    db.add(row)
    db.commit()
    return row


def _find_qualification(mturk: MTurk, name: str) -> str | None:
    """Find our own qualification type called `name` (after a create whose reply was lost)."""
    token = None
    while True:
        params: dict[str, Any] = {"Query": name, "MustBeRequestable": False, "MustBeOwnedByCaller": True, "MaxResults": 100}
        if token:
            params["NextToken"] = token
        resp = mturk.call("list_qualification_types", **params)
        for q in resp.get("QualificationTypes", []):
            if q.get("Name") == name:
                return q["QualificationTypeId"]
        token = resp.get("NextToken")
        if not token:
            return None


@dataclass(frozen=True)
class PublishedHit:
    """A HIT of the study: its id, batch index, whether this run created it, and its expiry."""

    hit_id: str
    batch_index: int
    created: bool
    expires_at: datetime | None
    hit_type_id: str | None


@dataclass(frozen=True)
class PublishResult:
    """What `publish` did: the study's HITs in this environment, the entry URL, the cost of new HITs."""

    study: str
    environment: str
    endpoint: str
    external_url: str
    qualification_type_id: str | None
    hits: tuple[PublishedHit, ...]
    estimate: CostEstimate

    @property
    def created(self) -> list[PublishedHit]:
        """The HITs created by this run."""
        return [h for h in self.hits if h.created]


def hit_params(study: Study, spec: HitSpec, url: str, batch_index: int, environment: str,
               exclude_qualification_id: str | None) -> dict[str, Any]:
    """Return the exact `create_hit` parameters of one HIT of the batch."""
    return {
        "MaxAssignments": spec.assignments,
        "AutoApprovalDelayInSeconds": spec.auto_approval_seconds,
        "LifetimeInSeconds": spec.lifetime_seconds,
        "AssignmentDurationInSeconds": spec.duration_seconds,
        "Reward": money(spec.reward),
        "Title": spec.title,
        "Keywords": spec.keywords,
        "Description": spec.description,
        "Question": external_question(url, spec.frame_height),
        "RequesterAnnotation": f"subjlab:{study.name}:{batch_index}"[:255],
        "QualificationRequirements": spec.qualifications.requirements(exclude_qualification_id),
        "UniqueRequestToken": request_token(study, environment, batch_index),
    }


def publish(db: Session, mturk: MTurk, study_name: str, public_url: str, hits: int, spec: HitSpec, *,
            exclude_participants: bool = True, allow_http: bool = False, now: datetime | None = None) -> PublishResult:
    """Make sure `study_name` has `hits` HITs in the client's environment; create the missing ones.

    Each created HIT is committed to the database right away, so an interrupted run resumes where it
    stopped. Raises ValueError for a closed study or bad options; botocore ClientError for MTurk errors.
    """
    if hits < 1 or hits > 10_000:
        raise ValueError(f"--hits must be between 1 and 10000, got {hits}")
    study = get_study(db, study_name)
    if study.status != "open":
        raise ValueError(f"study {study.name!r} is closed: reopen it or publish another study")
    url = entry_url(public_url, study.name, allow_http=allow_http)
    env = mturk.environment
    existing = {h.batch_index: h for h in db.scalars(select(MTurkHit).where(
        MTurkHit.study_id == study.id, MTurkHit.environment == env))}
    missing = [i for i in range(hits) if i not in existing]
    qual = ensure_qualification(db, mturk, study, now) if exclude_participants and missing else None
    if qual is None and exclude_participants:
        qual = db.scalars(select(MTurkQualification).where(MTurkQualification.study_id == study.id,
                                                           MTurkQualification.environment == env)).first()
    qual_id = qual.qualification_type_id if qual else None
    out: list[PublishedHit] = [PublishedHit(h.hit_id, i, False, _as_aware(h.expires_at), h.hit_type_id)
                               for i, h in sorted(existing.items()) if i < hits]
    for batch_index in missing:
        params = hit_params(study, spec, url, batch_index, env, qual_id)
        hit = _create_or_recover(mturk, params)
        row = MTurkHit(
            study_id=study.id, environment=env, endpoint=mturk.endpoint.url, batch_index=batch_index,
            request_token=params["UniqueRequestToken"], hit_id=hit["HITId"], hit_type_id=hit.get("HITTypeId"),
            hit_group_id=hit.get("HITGroupId"), external_url=url, title=spec.title, reward=money(spec.reward),
            max_assignments=spec.assignments, duration_seconds=spec.duration_seconds,
            lifetime_seconds=spec.lifetime_seconds, auto_approval_seconds=spec.auto_approval_seconds,
            qualification_type_id=qual_id, status=hit.get("HITStatus"), created_at=now or utcnow(),
            expires_at=_as_aware(hit.get("Expiration")) or (now or utcnow()) + timedelta(seconds=spec.lifetime_seconds),
        )
        db.add(row)
        db.commit()
        out.append(PublishedHit(row.hit_id, batch_index, True, row.expires_at, row.hit_type_id))
    out.sort(key=lambda h: h.batch_index)
    return PublishResult(study=study.name, environment=env, endpoint=mturk.endpoint.url, external_url=url,
                         qualification_type_id=qual_id, hits=tuple(out),
                         estimate=estimate_cost(spec.reward, spec.assignments, len(missing)))


def _create_or_recover(mturk: MTurk, params: dict[str, Any]) -> dict[str, Any]:
    """create_hit; when MTurk says this request token already made a HIT, return that HIT instead."""
    try:
        return mturk.call("create_hit", **params)["HIT"]
    except ClientError as exc:
        message = error_message(exc)
        found = _HIT_ID_RE.search(message)
        if found and ("already" in message.lower() or "UniqueRequestToken" in message):
            return mturk.call("get_hit", HITId=found.group(1))["HIT"]
        raise


def planned_hits(db: Session, study_name: str, environment: str, hits: int) -> int:
    """Return how many of `hits` HITs a publish would create (those not yet recorded)."""
    study = get_study(db, study_name)
    have = set(db.scalars(select(MTurkHit.batch_index).where(MTurkHit.study_id == study.id,
                                                            MTurkHit.environment == environment)))
    return sum(1 for i in range(hits) if i not in have)


def study_hits(db: Session, study_name: str, environment: str | None = None) -> Sequence[MTurkHit]:
    """Return the recorded HITs of a study (optionally of one environment), oldest first."""
    study = get_study(db, study_name)
    stmt = select(MTurkHit).where(MTurkHit.study_id == study.id)
    if environment is not None:
        stmt = stmt.where(MTurkHit.environment == environment)
    return list(db.scalars(stmt.order_by(MTurkHit.environment, MTurkHit.batch_index)))
