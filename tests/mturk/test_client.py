"""The MTurk client: sandbox by default, endpoint overrides in the right order, throttling retried."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from annotation_server.mturk.client import (
    LIVE_ENDPOINT,
    SANDBOX_ENDPOINT,
    connect,
    resolve_endpoint,
)


def test_sandbox_is_the_default_and_live_only_on_request():
    assert resolve_endpoint(environ={}).url == SANDBOX_ENDPOINT == "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
    assert resolve_endpoint(environ={}).environment == "sandbox"
    live = resolve_endpoint(live=True, environ={})
    assert (live.url, live.environment, live.source) == (LIVE_ENDPOINT, "live", "default")
    assert LIVE_ENDPOINT == "https://mturk-requester.us-east-1.amazonaws.com"


def test_endpoint_option_beats_the_mturk_variable_which_beats_the_global_one_and_the_default():
    env = {"AWS_ENDPOINT_URL_MTURK": "http://127.0.0.1:4000", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    assert resolve_endpoint(endpoint_url="http://127.0.0.1:3000/", environ=env).url == "http://127.0.0.1:3000"
    chosen = resolve_endpoint(live=True, environ=env)
    assert (chosen.url, chosen.source, chosen.environment) == ("http://127.0.0.1:4000", "AWS_ENDPOINT_URL_MTURK", "live")
    assert resolve_endpoint(environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}).url == "http://127.0.0.1:5000"
    ignored = dict(env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true")
    assert resolve_endpoint(environ=ignored).url == SANDBOX_ENDPOINT
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL_MTURK"):
        resolve_endpoint(environ={"AWS_ENDPOINT_URL_MTURK": "ftp://example.org"})


def test_connect_builds_a_real_mturk_client_on_the_resolved_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", "http://127.0.0.1:4566")
    client = connect()
    assert client.client.meta.service_model.service_name == "mturk"
    assert client.client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.client.meta.region_name == "us-east-1"
    monkeypatch.delenv("AWS_ENDPOINT_URL_MTURK")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert connect(live=True).client.meta.endpoint_url == LIVE_ENDPOINT
    assert connect().client.meta.endpoint_url == SANDBOX_ENDPOINT


def test_throttling_is_retried_with_growing_backoff_until_it_succeeds(stubbed_mturk):
    s = stubbed_mturk()
    s.stub.add_client_error("get_account_balance", service_error_code="ThrottlingException", http_status_code=400)
    s.stub.add_client_error("get_account_balance", service_error_code="ServiceUnavailable", http_status_code=503)
    s.stub.add_client_error("get_account_balance", service_error_code="ThrottlingException", http_status_code=400)
    s.stub.add_response("get_account_balance", {"AvailableBalance": "10000.00"}, {})
    assert s.mturk.call("get_account_balance")["AvailableBalance"] == "10000.00"
    assert len(s.sleeps) == 3 and s.mturk.retries == 3
    # capped exponential backoff: attempt n waits between base*2^(n-1)/2 and base*2^(n-1)
    for n, delay in enumerate(s.sleeps, start=1):
        ceiling = 0.5 * 2 ** (n - 1)
        assert ceiling / 2 <= delay <= ceiling
    assert s.sleeps[2] > s.sleeps[0]


def test_other_errors_are_not_retried_and_retries_give_up(stubbed_mturk):
    s = stubbed_mturk()
    s.stub.add_client_error("get_account_balance", service_error_code="RequestError", service_message="bad", http_status_code=400)
    with pytest.raises(ClientError, match="RequestError"):
        s.mturk.call("get_account_balance")
    assert s.sleeps == []
    for _ in range(s.mturk.max_attempts):
        s.stub.add_client_error("get_account_balance", service_error_code="ThrottlingException", http_status_code=400)
    with pytest.raises(ClientError, match="ThrottlingException"):
        s.mturk.call("get_account_balance")
    assert len(s.sleeps) == s.mturk.max_attempts - 1
