"""The options, MTurk client and error handling that the `subjlab mturk ...` commands share, and how
they print session checks and the outcomes of actions (the commands themselves are in `mturk.py`)."""

from __future__ import annotations

import click

from subjlab.commands._database import db_option
from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table

STUDY_OPTION = click.option("--study", "study", required=True, metavar="NAME", help="The study's name.")
DB_OPTION = db_option()
ENV_OPTION = click.option(
    "--sandbox/--live", "sandbox", default=True, show_default=True,
    help="The MTurk requester sandbox (fake money, https://workersandbox.mturk.com) or the live marketplace.")
ENDPOINT_OPTION = click.option(
    "--endpoint-url", default=None, metavar="URL",
    help="MTurk API endpoint to use instead of the sandbox/live one (e.g. a local stand-in) "
         "[default: $AWS_ENDPOINT_URL_MTURK, else the sandbox or live endpoint].")


def common_options(f):
    for option in (FORMAT_OPTION, ENDPOINT_OPTION, ENV_OPTION, DB_OPTION, STUDY_OPTION):
        f = option(f)
    return f


def mturk_client(sandbox: bool, endpoint_url: str | None):
    from annotation_server.mturk.client import connect

    mturk = connect(live=not sandbox, endpoint_url=endpoint_url)
    if not mturk.endpoint.is_default:
        click.echo(f"MTurk endpoint: {mturk.endpoint.url} (from {mturk.endpoint.source}; {mturk.environment})", err=True)
    return mturk


def mturk_errors(fn):
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


def emit_session_checks(checks, fmt: str, platform: str) -> None:
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


def emit_outcomes(outcomes, fmt: str, title: str) -> None:
    if fmt == "json":
        emit_json({"actions": [{"kind": o.kind, "target": o.target, "outcome": o.outcome, "detail": o.detail} for o in outcomes]})
        return
    emit_table(title, ["action", "target", "outcome", "detail"], [[o.kind, o.target, o.outcome, o.detail or None] for o in outcomes])
