"""`subjlab mturk ...`: publish a study on Amazon Mechanical Turk, watch it, review and pay, clean up.

Argument parsing and output only; the work is done by `annotation_server.mturk` and
`annotation_server.quality`. The sandbox is the default everywhere; `--live` is the real marketplace.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from subjlab.commands._database import db_option, open_session
from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table
from subjlab.commands._study_data import EXCLUSION_RULE_OPTIONS, RULE_FIELDS, apply_options

STUDY_OPTION = click.option("--study", "study", required=True, metavar="NAME", help="The study's name.")
DB_OPTION = db_option()
ENV_OPTION = click.option(
    "--sandbox/--live", "sandbox", default=True, show_default=True,
    help="The MTurk requester sandbox (fake money, https://workersandbox.mturk.com) or the live marketplace.")
ENDPOINT_OPTION = click.option(
    "--endpoint-url", default=None, metavar="URL",
    help="MTurk API endpoint to use instead of the sandbox/live one (e.g. a local stand-in) "
         "[default: $AWS_ENDPOINT_URL_MTURK, else the sandbox or live endpoint].")


def _common(f):
    for option in (FORMAT_OPTION, ENDPOINT_OPTION, ENV_OPTION, DB_OPTION, STUDY_OPTION):
        f = option(f)
    return f


def _client(sandbox: bool, endpoint_url: str | None):
    from annotation_server.mturk.client import connect

    mturk = connect(live=not sandbox, endpoint_url=endpoint_url)
    if not mturk.endpoint.is_default:
        click.echo(f"MTurk endpoint: {mturk.endpoint.url} (from {mturk.endpoint.source}; {mturk.environment})", err=True)
    return mturk


def _mturk_errors(fn):
    """Turn botocore's errors (AWS refusals, missing credentials) into `error: ...` lines."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise ValueError(f"MTurk: {err.get('Code', 'error')}: {err.get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise ValueError(f"MTurk: {exc} (credentials come from the standard AWS chain: environment, "
                             "~/.aws/credentials, SSO or an instance role)") from None

    return wrapper


@click.group()
def mturk() -> None:
    """Publish and review studies on Amazon Mechanical Turk (sandbox by default), and set up Prolific.

    \b
    Typical MTurk round:
      subjlab mturk publish --study S --url https://HOST --hits 5 --assignments 9 --reward 0.50 \\
          --title "Label short texts" --description "..." --duration 30m --lifetime 3d
      subjlab mturk status --study S
      subjlab mturk review --study S --approve-if "gold>=0.8" --reject-if "flagged>0" --feedback "..."
      subjlab mturk expire --study S && subjlab mturk delete --study S

    AWS credentials come from the standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws,
    SSO, roles); nothing secret is stored. AWS_ENDPOINT_URL_MTURK or --endpoint-url point the
    commands at another endpoint (a local stand-in of the MTurk API).

    \b
    Prolific lives here too (it needs no API calls, hence no credentials):
      subjlab mturk prolific --study S --url https://HOST \\
          --completion-url "https://app.prolific.com/submissions/complete?cc=CODE"
    prints the study URL to paste into Prolific (https://HOST/prolific/S?PROLIFIC_PID=...);
    participants who finish are redirected to the completion URL.

    \b
    After collection, analyse without the flagged workers (failed attention checks, low gold
    accuracy, too fast; thresholds: --min-gold, --min-seconds, ... as in `review`):
      subjlab agreement --study S --exclude-flagged     (labels)
      subjlab rank --study S --exclude-flagged          (judgments)
    The admin page /admin/studies/S lists the flagged workers and, on request, compares
    worker models (Dawid-Skene, MACE, noisy Bradley-Terry) with majority vote.
    """


# --------------------------------------------------------------------------------------------- publish
@mturk.command()
@STUDY_OPTION
@click.option("--url", "public_url", required=True, metavar="https://PUBLIC-HOST",
              help="Public base URL of the annotation server; HITs show <URL>/mturk/<study>.")
@click.option("--hits", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Number of HITs the study should have in this environment (re-running creates only the missing ones).")
@click.option("--assignments", type=click.IntRange(1, 1_000_000), default=9, show_default=True,
              help="Assignments (distinct workers) per HIT; 10 or more doubles MTurk's commission.")
@click.option("--reward", required=True, metavar="DOLLARS", help="Reward per assignment, e.g. 0.50.")
@click.option("--title", required=True, help="HIT title workers see (at most 128 characters).")
@click.option("--description", required=True, help="HIT description workers see.")
@click.option("--keywords", default="", help="Comma-separated search keywords.")
@click.option("--duration", default="30m", show_default=True, help="Time a worker has per assignment (45s, 30m, 2h).")
@click.option("--lifetime", default="3d", show_default=True, help="How long the HITs can be accepted (1h, 3d, 2w).")
@click.option("--auto-approve", default="3d", show_default=True, help="Submitted work is approved automatically after this delay.")
@click.option("--frame-height", type=click.IntRange(0, 4000), default=800, show_default=True,
              help="Height in pixels of the frame showing the study (0 = full window).")
@click.option("--locale", "locales", multiple=True, default=("US",), show_default=True,
              help="Allowed worker locale (ISO country, or country-subdivision like US-NY); repeatable; 'any' for none.")
@click.option("--min-approval-rate", type=click.IntRange(0, 100), default=95, show_default=True,
              help="Minimum percentage of a worker's approved assignments (0 = no requirement).")
@click.option("--min-approved", type=click.IntRange(0), default=100, show_default=True,
              help="Minimum number of approved HITs (0 = no requirement; sandbox accounts often have none).")
@click.option("--exclude-participants/--allow-participants", default=True, show_default=True,
              help="Keep workers who already took part out (a per-study qualification).")
@ENV_OPTION
@ENDPOINT_OPTION
@DB_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation with --live.")
@click.option("--dry-run", is_flag=True, help="Print the cost and the first create_hit request; create nothing.")
@FORMAT_OPTION
@_mturk_errors
def publish(study: str, public_url: str, hits: int, assignments: int, reward: str, title: str, description: str,
            keywords: str, duration: str, lifetime: str, auto_approve: str, frame_height: int, locales: tuple[str, ...],
            min_approval_rate: int, min_approved: int, exclude_participants: bool, sandbox: bool,
            endpoint_url: str | None, db_url: str | None, yes: bool, dry_run: bool, fmt: str) -> None:
    """Create the study's HITs (ExternalQuestion pointing at /mturk/<study>) and record them.

    Prints the cost estimate (rewards + MTurk's 20% commission, 40% for HITs with 10 or more
    assignments). With --live it asks for confirmation first (--yes skips the question).

    Example: subjlab mturk publish --study spam-labels --url https://study.example.org --hits 4
    --assignments 9 --reward 0.50 --title "Is this SMS spam?" --description "Label 20 short messages"
    --duration 30m --lifetime 3d
    """
    from annotation_server.mturk import publish as pub
    from annotation_server.mturk.client import resolve_endpoint
    from annotation_server.studies import get_study

    policy = pub.QualificationPolicy(
        locales=() if any(l.lower() == "any" for l in locales) else tuple(l.upper() for l in locales),
        min_approval_rate=min_approval_rate or None, min_approved=min_approved or None)
    spec = pub.HitSpec(title=title, description=description, keywords=keywords,
                       reward=pub.parse_money(reward, "--reward"), assignments=assignments,
                       duration_seconds=pub.parse_duration(duration, "--duration"),
                       lifetime_seconds=pub.parse_duration(lifetime, "--lifetime"),
                       auto_approval_seconds=pub.parse_duration(auto_approve, "--auto-approve"),
                       frame_height=frame_height, qualifications=policy)
    endpoint = resolve_endpoint(live=not sandbox, endpoint_url=endpoint_url)
    with open_session(db_url, write=True) as db:
        row = get_study(db, study)
        if row.max_per_worker is None:
            click.echo(f"warning: study {study!r} has no max_per_worker: one assignment may cover every unit "
                       "of the study; set it to the number of units per assignment", err=True)
        n_new = pub.planned_hits(db, study, endpoint.environment, hits)
        estimate = pub.estimate_cost(spec.reward, spec.assignments, n_new)
        allow_http = not endpoint.is_default
        url = pub.entry_url(public_url, study, allow_http=allow_http)
        if fmt != "json" or dry_run:
            for line in [f"{endpoint.environment}: {n_new} new HIT(s) for study {study!r} -> {url}"] + estimate.lines():
                click.echo(line, err=fmt == "json")
        if dry_run:
            params = pub.hit_params(row, spec, url, 0, endpoint.environment, "(participation qualification)"
                                    if exclude_participants else None)
            emit_json({"dry_run": True, "estimate": estimate.to_json(), "create_hit": params})
            return
        if not sandbox and n_new and not yes:
            click.confirm(f"Publish {n_new} HIT(s) on the LIVE marketplace for ${pub.money(estimate.total)} "
                          "of real money?", abort=True, err=True)
        client = _client(sandbox, endpoint_url)
        result = pub.publish(db, client, study, public_url, hits, spec, exclude_participants=exclude_participants,
                             allow_http=allow_http)
    worker_site = "https://worker.mturk.com" if not sandbox else "https://workersandbox.mturk.com"
    out = {"study": result.study, "environment": result.environment, "endpoint": result.endpoint,
           "external_url": result.external_url, "qualification_type_id": result.qualification_type_id,
           "created": len(result.created), "estimate": estimate.to_json(),
           "hits": [{"batch": h.batch_index, "hit_id": h.hit_id, "created": h.created,
                     "expires_at": h.expires_at.isoformat() if h.expires_at else None,
                     "hit_type_id": h.hit_type_id} for h in result.hits]}
    if fmt == "json":
        emit_json(out)
        return
    emit_table(f"HITs of {study} ({result.environment})", ["batch", "hit_id", "this run", "expires"],
               [[h["batch"], h["hit_id"], "created" if h["created"] else "existing", h["expires_at"]] for h in out["hits"]])
    types = {h.hit_type_id for h in result.hits if h.hit_type_id}
    for t in sorted(types):
        click.echo(f"workers find it at {worker_site}/projects/{t}/tasks")


# --------------------------------------------------------------------------------------------- status
@mturk.command()
@_common
@_mturk_errors
def status(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str) -> None:
    """Show each HIT's state on MTurk: available, pending and completed assignments, expiry.

    Example: subjlab mturk status --study spam-labels
    """
    from annotation_server.mturk.review import hit_statuses

    with open_session(db_url, write=True) as db:
        rows = hit_statuses(db, _client(sandbox, endpoint_url), study)
    if fmt == "json":
        emit_json({"study": study, "hits": [r.to_json() for r in rows]})
        return
    emit_table(f"HITs of {study}", ["batch", "hit_id", "status", "available", "pending", "completed", "of", "expires"],
               [[r.batch_index, r.hit_id, r.status, r.available, r.pending, r.completed, r.max_assignments,
                 r.expiration.isoformat() if r.expiration else None] for r in rows])


# --------------------------------------------------------------------------------------------- review
@mturk.command()
@_common
@click.option("--approve-if", default=None, metavar="RULE",
              help='Approve submitted assignments whose worker matches, e.g. "gold>=0.8 and agreement>=0.5". '
                   "Names: gold, agreement, seconds, units, gold_answered, attention_failed, flagged (the "
                   "number of exclusion rules the worker breaks; see the thresholds below).")
@click.option("--reject-if", default=None, metavar="RULE",
              help='Reject submitted assignments whose worker matches, e.g. "attention_failed>0 or seconds<1.5" (needs --feedback).')
@click.option("--feedback", default=None, help="Message to workers with the approvals/rejections.")
@click.option("--dry-run", is_flag=True, help="Show what the rules would do; change nothing on MTurk.")
@apply_options(EXCLUSION_RULE_OPTIONS)
@_mturk_errors
def review(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str,
           approve_if: str | None, reject_if: str | None, feedback: str | None, dry_run: bool,
           **thresholds: float | int | None) -> None:
    """List the study's assignments with each worker's gold accuracy, agreement and time per unit; approve or
    reject by rule. Idempotent: re-running never approves or rejects twice. Workers seen get the
    study's participation qualification (kept out of later HITs).

    The "flags" column lists the exclusion rules a worker breaks (attention, gold, too_fast,
    agreement), with the thresholds given by --max-failed-attention, --min-gold, --min-seconds, ...
    (the same options as `subjlab agreement --exclude-flagged`); the rule name `flagged` counts them.

    Example: subjlab mturk review --study spam-labels --approve-if "gold>=0.8" --reject-if "attention_failed>0"
    --feedback "Thank you!"
    """
    from annotation_server.mturk.review import parse_rule
    from annotation_server.mturk.review import review as run_review
    from subjlab.commands._study_data import exclusion_rules

    approve_rule = parse_rule(approve_if) if approve_if else None
    reject_rule = parse_rule(reject_if) if reject_if else None
    rules = exclusion_rules(**{k: thresholds.get(k) for k in RULE_FIELDS})
    with open_session(db_url, write=True) as db:
        result = run_review(db, _client(sandbox, endpoint_url), study, approve_rule, reject_rule, feedback, dry_run,
                            rules=rules)
    if fmt == "json":
        emit_json(result.to_json())
        return
    _emit_session_checks(result.sessions, fmt, "MTurk")
    emit_table(f"Assignments of {study} ({result.environment}{', dry run' if dry_run else ''})",
               ["assignment", "worker", "status", "units", "gold", "agreement", "s/unit", "flags", "action"],
               [[r["assignment_id"], r["worker_id"], r["status"], r["units"], r["gold_accuracy"], r["agreement"],
                 r["median_seconds"], ",".join(r["flags"]) or None,
                 (f"{r['decision']} ({r['outcome']})" if r["outcome"] else (f"would {r['decision']}" if r["decision"] else None))]
                for r in result.to_json()["assignments"]])
    if dry_run:
        planned = [r.decision for r in result.rows if r.decision]
        click.echo(f"dry run: would approve {planned.count('approve')}, reject {planned.count('reject')}; nothing sent")
        return
    click.echo(f"approved {result.approved}, rejected {result.rejected}, "
               f"participation qualification given to {result.qualified} new worker(s)")


def _emit_session_checks(checks, fmt: str, platform: str) -> None:
    """The sessions the platform did not confirm, with the reason (their answers are left out by default)."""
    unconfirmed = [c for c in checks if c.status == "unconfirmed"]
    if fmt == "json":
        return
    click.echo(f"{len(checks) - len(unconfirmed)} of {len(checks)} session(s) confirmed by {platform}")
    if unconfirmed:
        emit_table(f"Unconfirmed sessions (their {sum(c.answers for c in unconfirmed)} answers are left out of "
                   "exports, rankings and agreement; --include-unconfirmed brings them back)",
                   ["session", "worker", "entry", "reference", "answers", "reason"],
                   [[c.session_id, c.worker_id, c.entry, c.entry_ref, c.answers, c.reason] for c in unconfirmed])


# --------------------------------------------------------------------------------------------- actions
def _emit_outcomes(outcomes, fmt: str, title: str) -> None:
    if fmt == "json":
        emit_json({"actions": [{"kind": o.kind, "target": o.target, "outcome": o.outcome, "detail": o.detail} for o in outcomes]})
        return
    emit_table(title, ["action", "target", "outcome", "detail"], [[o.kind, o.target, o.outcome, o.detail or None] for o in outcomes])


@mturk.command()
@_common
@click.argument("assignment_ids", nargs=-1)
@click.option("--all-submitted", is_flag=True, help="Approve every submitted assignment of the study.")
@click.option("--feedback", default=None, help="Optional message to the workers.")
@_mturk_errors
def approve(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str,
            assignment_ids: tuple[str, ...], all_submitted: bool, feedback: str | None) -> None:
    """Approve assignments (pay their reward); an assignment already approved is not approved again.

    Example: subjlab mturk approve --study spam-labels 3ABCD...  (or --all-submitted)
    """
    from annotation_server.mturk import review as rv

    if not assignment_ids and not all_submitted:
        raise click.UsageError("give assignment ids or --all-submitted")
    with open_session(db_url, write=True) as db:
        client = _client(sandbox, endpoint_url)
        ids = list(assignment_ids)
        if all_submitted:
            ids += [a.assignment_id for a in rv.sync_assignments(db, client, study) if a.mturk_status == "Submitted"]
        outcomes = [rv.approve(db, client, study, a, feedback) for a in dict.fromkeys(ids)]
    _emit_outcomes(outcomes, fmt, f"Approvals in {study}")


@mturk.command()
@_common
@click.argument("assignment_ids", nargs=-1, required=True)
@click.option("--feedback", required=True, help="Why the work is rejected (MTurk shows it to the worker).")
@_mturk_errors
def reject(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str,
           assignment_ids: tuple[str, ...], feedback: str) -> None:
    """Reject assignments with feedback; an assignment already rejected is not rejected again.

    Example: subjlab mturk reject --study spam-labels 3ABCD... --feedback "Failed the attention checks."
    """
    from annotation_server.mturk import review as rv

    with open_session(db_url, write=True) as db:
        client = _client(sandbox, endpoint_url)
        outcomes = [rv.reject(db, client, study, a, feedback) for a in dict.fromkeys(assignment_ids)]
    _emit_outcomes(outcomes, fmt, f"Rejections in {study}")


@mturk.command()
@_common
@click.option("--assignment", "assignment_id", required=True, help="The assignment the bonus is for.")
@click.option("--amount", required=True, metavar="DOLLARS", help="Bonus in dollars, e.g. 0.25 (MTurk adds 20%).")
@click.option("--reason", required=True, help="Message to the worker.")
@_mturk_errors
def bonus(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str,
          assignment_id: str, amount: str, reason: str) -> None:
    """Pay a bonus for an assignment (once: re-running never pays twice).

    Example: subjlab mturk bonus --study spam-labels --assignment 3ABCD... --amount 0.25 --reason "Great work"
    """
    from annotation_server.mturk import review as rv
    from annotation_server.mturk.publish import parse_money

    value = parse_money(amount, "--amount")
    with open_session(db_url, write=True) as db:
        outcome = rv.bonus(db, _client(sandbox, endpoint_url), study, assignment_id, value, reason)
    _emit_outcomes([outcome], fmt, f"Bonus in {study}")


@mturk.command()
@_common
@click.option("--hit", "hit_ids", multiple=True, help="Only this HIT (repeatable) [default: all of the study's HITs].")
@_mturk_errors
def expire(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str,
           hit_ids: tuple[str, ...]) -> None:
    """Expire HITs now: nobody new can accept them; work in progress can still be submitted.

    Example: subjlab mturk expire --study spam-labels
    """
    from annotation_server.mturk import review as rv

    with open_session(db_url, write=True) as db:
        outcomes = rv.expire(db, _client(sandbox, endpoint_url), study, list(hit_ids))
    _emit_outcomes(outcomes, fmt, f"Expired HITs of {study}")


@mturk.command()
@_common
@click.option("--hit", "hit_ids", multiple=True, help="Only this HIT (repeatable) [default: all of the study's HITs].")
@_mturk_errors
def delete(study: str, db_url: str | None, sandbox: bool, endpoint_url: str | None, fmt: str,
           hit_ids: tuple[str, ...]) -> None:
    """Delete HITs on MTurk (they must be expired with every assignment reviewed). The study's data stays.

    Example: subjlab mturk delete --study spam-labels
    """
    from annotation_server.mturk import review as rv

    with open_session(db_url, write=True) as db:
        outcomes = rv.delete(db, _client(sandbox, endpoint_url), study, list(hit_ids))
    _emit_outcomes(outcomes, fmt, f"Deleted HITs of {study}")


# --------------------------------------------------------------------------------------------- prolific
@mturk.command()
@STUDY_OPTION
@click.option("--completion-url", required=True, metavar="URL",
              help="Where finished participants go, e.g. https://app.prolific.com/submissions/complete?cc=CODE")
@click.option("--url", "public_url", default=None, metavar="https://PUBLIC-HOST",
              help="Public base URL of the annotation server, to print the exact study URL for Prolific.")
@DB_OPTION
def prolific(study: str, completion_url: str, public_url: str | None, db_url: str | None) -> None:
    """Set up a study for Prolific: its completion URL. Participants enter at /prolific/<study>.

    Prints the study URL to paste into Prolific's "study link" (its {{%PROLIFIC_PID%}},
    {{%STUDY_ID%}} and {{%SESSION_ID%}} placeholders are filled in by Prolific). A participant
    who opens it again resumes; once nothing is left for them they are redirected (303) to the
    completion URL. Their worker id in exports is their PROLIFIC_PID. Running it again changes
    the completion URL.

    Example: subjlab mturk prolific --study spam-labels --url https://study.example.org
    --completion-url "https://app.prolific.com/submissions/complete?cc=C1A2B3C4"
    """
    from annotation_server.mturk.prolific import PROLIFIC_QUERY, configure, study_url

    link = study_url(public_url, study) if public_url else f"https://PUBLIC-HOST/prolific/{study}?{PROLIFIC_QUERY}"
    with open_session(db_url, write=True) as db:
        configure(db, study, completion_url)
    click.echo(f"Prolific study URL: {link}")
    click.echo(f"finished participants go to {completion_url}")
    sys.stdout.flush()


@mturk.command("prolific-review")
@STUDY_OPTION
@click.option("--api-url", default=None, metavar="URL",
              help="Prolific's API [default: https://api.prolific.com]; e.g. a local stand-in.")
@DB_OPTION
@FORMAT_OPTION
def prolific_review(study: str, api_url: str | None, db_url: str | None, fmt: str) -> None:
    """Check each Prolific session of the study against Prolific's own submission records.

    Every session's SESSION_ID is looked up as a submission (GET /api/v1/submissions/ID/, with the API
    token in $PROLIFIC_API_TOKEN) and must name the same participant (PROLIFIC_PID) and Prolific study.
    Sessions Prolific does not confirm are marked unconfirmed, with the reason; their answers are left
    out of exports, rankings and agreement by default (`subjlab study export --include-unconfirmed`
    brings them back). Prolific's study URL parameters are not signed either: this is the check that
    a participant id was not borrowed.

    Example: PROLIFIC_API_TOKEN=... subjlab mturk prolific-review --study spam-labels
    """
    from annotation_server.clock import utcnow
    from annotation_server.mturk.identity import PROLIFIC_API, PROLIFIC_TOKEN_ENV, check_prolific_sessions, prolific_fetcher
    from annotation_server.studies import get_study

    fetch = prolific_fetcher(api_url or PROLIFIC_API, os.environ.get(PROLIFIC_TOKEN_ENV))
    with open_session(db_url, write=True) as db:
        checks = check_prolific_sessions(db, get_study(db, study), fetch, utcnow())
    if fmt == "json":
        emit_json({"study": study, "sessions": [c.to_json() for c in checks]})
        return
    _emit_session_checks(checks, fmt, "Prolific")
