"""The boto3 `mturk` client: which endpoint, which credentials, and retries when MTurk throttles.

Endpoint, in order of precedence:
1. an explicit `endpoint_url` (the CLI's `--endpoint-url`);
2. the standard environment variables `AWS_ENDPOINT_URL_MTURK`, then `AWS_ENDPOINT_URL`
   (ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true, as in botocore);
3. the sandbox `https://mturk-requester-sandbox.us-east-1.amazonaws.com` (the default), or the live
   marketplace `https://mturk-requester.us-east-1.amazonaws.com` only when `live=True`.

The resolved URL is always passed to boto3 explicitly, so what is printed is what is used.
Credentials come only from the standard AWS chain (environment, shared files, SSO, instance roles):
this module never accepts, prints or stores keys.

Retries: botocore's "standard" retry mode handles transient connection errors; on top of it
`MTurk.call` retries throttling and service-unavailable errors with exponential backoff and jitter,
which matters for batch operations (hundreds of approvals) under MTurk's request-rate limits.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from botocore.exceptions import ClientError

log = logging.getLogger("annotation_server.mturk")

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
LIVE_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"
#: MTurk's API lives in us-east-1 only.
REGION = "us-east-1"
SERVICE_ENV_VAR = "AWS_ENDPOINT_URL_MTURK"
GLOBAL_ENV_VAR = "AWS_ENDPOINT_URL"

#: Error codes that mean "slow down and try again".
RETRYABLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ServiceUnavailable", "ServiceUnavailableException",
})


@dataclass(frozen=True)
class Endpoint:
    """The MTurk endpoint to talk to: its URL, the environment ("sandbox"/"live") and where it came from."""

    url: str
    environment: str
    source: str

    @property
    def is_default(self) -> bool:
        """True when the URL is the environment's standard AWS endpoint (no override)."""
        return self.source == "default"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def resolve_endpoint(live: bool = False, endpoint_url: str | None = None,
                     environ: Mapping[str, str] | None = None) -> Endpoint:
    """Return the Endpoint for the options and environment (precedence in the module doc).

    Raises ValueError for an override that is not an http(s) URL.
    """
    env = os.environ if environ is None else environ
    environment = "live" if live else "sandbox"
    if endpoint_url:
        return Endpoint(_check_url(endpoint_url, "--endpoint-url"), environment, "--endpoint-url")
    if not _truthy(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
        for var in (SERVICE_ENV_VAR, GLOBAL_ENV_VAR):
            if env.get(var):
                return Endpoint(_check_url(env[var], var), environment, var)
    return Endpoint(LIVE_ENDPOINT if live else SANDBOX_ENDPOINT, environment, "default")


def _check_url(url: str, origin: str) -> str:
    url = url.strip()
    if not url.startswith(("https://", "http://")) or len(url) > 300:
        raise ValueError(f"{origin}: {url[:80]!r} is not an http(s) URL of an MTurk API endpoint")
    return url.rstrip("/")


def make_boto_client(endpoint: Endpoint, session: Any | None = None):
    """Return a boto3 `mturk` client for `endpoint`, credentials from the standard AWS chain."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=REGION,
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="subjlab-mturk",
    )
    factory = session if session is not None else boto3.session.Session()
    return factory.client("mturk", region_name=REGION, endpoint_url=endpoint.url, config=config)


class MTurk:
    """An MTurk client with throttling retries: `call("create_hit", **params)` -> the response dict.

    `client` is a boto3 `mturk` client (tests attach botocore's Stubber to it); `sleep` and `rng` are
    injectable so tests can check the backoff without waiting.
    """

    def __init__(self, client: Any, endpoint: Endpoint, *, max_attempts: int = 6, base_delay: float = 0.5,
                 max_delay: float = 20.0, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.client = client
        self.endpoint = endpoint
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.retries = 0

    @property
    def environment(self) -> str:
        """"sandbox" or "live"."""
        return self.endpoint.environment

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based): capped exponential, half of it jittered."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call an MTurk operation, retrying throttling/unavailable errors; return its response.

        Other errors (and the last retryable one) propagate as botocore `ClientError`.
        """
        method = getattr(self.client, operation)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(**params)
            except ClientError as exc:
                code = error_code(exc)
                if code not in RETRYABLE_CODES or attempt >= self.max_attempts:
                    raise
                delay = self.backoff(attempt)
                self.retries += 1
                log.warning("MTurk %s: %s; retry %d/%d in %.1f s", operation, code, attempt, self.max_attempts - 1, delay)
                self.sleep(delay)


def error_code(exc: ClientError) -> str:
    """Return the AWS error code of a ClientError ("" if none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    """Return the AWS error message of a ClientError ("" if none)."""
    return str(exc.response.get("Error", {}).get("Message", ""))


def connect(live: bool = False, endpoint_url: str | None = None, session: Any | None = None) -> MTurk:
    """Return an MTurk client for the sandbox (default) or the live marketplace, endpoint as resolved above."""
    endpoint = resolve_endpoint(live=live, endpoint_url=endpoint_url)
    return MTurk(make_boto_client(endpoint, session=session), endpoint)
