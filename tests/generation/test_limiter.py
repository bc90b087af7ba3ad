"""`generation.limiter`: the AIMD window on its own, and the adaptive limit of whole runs against
a rate-limited OpenAI-compatible server on 127.0.0.1 (`generation.openai_server.RateLimit`, the
real `openai` client): budget headers respected, few 429s, convergence from 429s alone, a storm of
429s waited out, exact counts, and what the summary says."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from generation.engine import GenerationConfig, GenerationError, generate, summary_path
from generation.limiter import BETA, EMPTY_BETA, GROWTH_PER_S, REBOUND, SERVED_SHARE, AIMDWindow, describe
from generation.openai_server import RateLimit, completion_body, prompt_tokens
from subjlab.cli import cli
from subjlab.records import read_examples


def _serve_a_second_of(window: AIMDWindow, per_s: int, start: float = 0.0) -> float:
    """Record a success at `start`, then `per_s` more spread over the next second (none pressing);
    return the second's end."""
    for i in range(per_s + 1):
        window.on_success(False, start + i / per_s)
    return start + 1.0


def test_a_burst_of_429s_cuts_the_window_to_just_under_what_was_served():
    window = AIMDWindow(16)
    now = _serve_a_second_of(window, 8)
    assert window.on_rate_limited(send_no=20, last_send_no=25, now=now, latency=0.2)
    assert window.size == pytest.approx(8 * 0.2 * SERVED_SHARE)  # 8/s x 0.2 s latency, a little under
    assert window.cap == 2 and window.cuts == 1
    # that second may have been partly below the limit: the window may climb back a little, quickly
    assert window.threshold == pytest.approx(window.size * REBOUND)


def test_429s_of_requests_sent_before_the_cut_belong_to_the_same_burst():
    window = AIMDWindow(16)
    now = _serve_a_second_of(window, 100)  # served 100/s x 0.2 s = 20 in flight: the cut is by BETA
    assert window.on_rate_limited(20, 25, now, 0.2)
    assert window.size == pytest.approx(16 * BETA)
    for send_no in (21, 24, 25):
        assert not window.on_rate_limited(send_no, 30, now, 0.2)
    assert window.size == pytest.approx(16 * BETA) and window.cuts == 1
    window.on_success(False, now + 0.1)
    assert window.on_rate_limited(26, 31, now + 0.2, 0.2)  # sent after the cut, served since: a new burst
    assert window.size == pytest.approx(16 * BETA * BETA) and window.cuts == 2


def test_a_first_burst_halves_the_window_until_a_whole_second_was_measured():
    window = AIMDWindow(16)
    for i in range(8):
        window.on_success(False, 0.2 + i / 100)
    window.on_rate_limited(1, 16, 0.3, 0.2)  # 8 served, but in a tenth of a second: no measure yet
    assert window.size == 8 and window.threshold == 16


def test_the_cuts_of_a_storm_keep_where_the_endpoint_was_serving():
    window = AIMDWindow(16)
    now = _serve_a_second_of(window, 8)
    window.on_rate_limited(20, 25, now, 0.2)  # the storm begins: the last second still served 8/s
    threshold = window.threshold
    assert threshold == pytest.approx(8 * 0.2 * SERVED_SHARE * REBOUND)
    for n, t in enumerate((0.1, 0.3, 0.6, 0.9), start=26):  # nothing served since that cut
        window.on_rate_limited(n, n, now + t, 0.2)
    assert window.size == 1.0 and window.threshold == threshold


def test_with_nothing_served_the_window_halves_down_to_one_and_keeps_where_to_climb_back():
    window = AIMDWindow(12)
    now = _serve_a_second_of(window, 30)
    window.on_rate_limited(1, 1, now, 0.2)  # served 30/s x 0.2 = 6: cut to 5.7
    cut, threshold = window.size, window.threshold
    assert cut == pytest.approx(6 * SERVED_SHARE) and threshold == pytest.approx(cut * REBOUND)
    sizes = []
    for n in range(2, 7):  # a storm: nothing served in the last second
        window.on_rate_limited(n, n, now + 5 + n, 0.2)
        sizes.append(window.size)
    assert sizes == [pytest.approx(cut * EMPTY_BETA), pytest.approx(cut * EMPTY_BETA ** 2), 1.0, 1.0, 1.0]
    assert window.threshold == threshold
    # the storm is over: one step per success back to the threshold, then slowly
    t = now + 20
    for _ in range(7):
        t += 0.1
        window.on_success(True, t)
    assert window.size == threshold


def test_the_window_grows_slowly_and_only_while_it_holds_requests_back():
    window = AIMDWindow(4)
    now = _serve_a_second_of(window, 10)
    window.on_rate_limited(1, 1, now, 0.2)
    assert window.size == pytest.approx(2 * SERVED_SHARE)
    for i in range(50):  # served, but the window held nothing back: no growth
        window.on_success(False, now + i * 0.1)
    assert window.size == pytest.approx(2 * SERVED_SHARE)
    t = now + 5
    t += 0.1
    window.on_success(True, t)
    rebound = window.threshold
    assert window.size == rebound == pytest.approx(2 * SERVED_SHARE * REBOUND)  # quickly back
    for _ in range(100):  # ten more seconds of requests held back by the window: slowly
        t += 0.1
        window.on_success(True, t)
    assert window.size == pytest.approx(rebound * (1 + 10 * GROWTH_PER_S), rel=0.01)
    for _ in range(10_000):
        t += 0.1
        window.on_success(True, t)
    assert window.size == 4.0  # never above the ceiling


def test_window_settings_are_checked():
    with pytest.raises(ValueError, match="ceiling"):
        AIMDWindow(0)
    with pytest.raises(ValueError, match="beta"):
        AIMDWindow(4, beta=1.0)


def _config(server, tmp_path, **kw) -> GenerationConfig:
    base = dict(task="sms_spam", backend="openai", base_url=server.url, model="scripted", concurrency=16,
                near_duplicate_threshold=None, cache=False, progress=False)
    base.update(kw)
    return GenerationConfig(**base)


def _exact(out, per_label: int) -> bool:
    records = read_examples(out)
    return sorted(r.id for r in records) == sorted(f"sms_spam:zero-shot:{lab}:{n}" for lab in ("ham", "spam")
                                                   for n in range(per_label))


def test_with_budget_headers_the_run_keeps_within_them(serve, scripted, tmp_path):
    limit = RateLimit(scripted(latency=0.05), requests_per_s=20, tokens_per_min=200_000, headers=True)
    out = tmp_path / "out.jsonl"
    summary = generate(_config(serve(limit), tmp_path, per_label=25), out)
    assert summary.complete and _exact(out, 25)
    report = json.loads(summary_path(out).read_text())["rate_limit"]
    assert "headers" in report["limited_by"] and report["waits_for_budget"] > 0
    assert report["allowed_requests_per_s"] == pytest.approx(20, rel=0.1)
    assert report["allowed_tokens_per_min"] == pytest.approx(200_000, rel=0.1)
    # the first 16 requests go before any reply has told the budget; after that it is kept
    assert limit.rejected <= 3, limit.log
    assert summary.requests == limit.admitted


class _UsageAsCharged:
    """Canned replies after `latency` seconds whose `usage` counts prompt tokens as the rate limit
    charges them (as OpenAI's count and its estimate nearly agree)."""

    def __init__(self, text, latency: float):
        self.text, self.latency = text, latency

    def __call__(self, body):
        time.sleep(self.latency)
        return completion_body("scripted", self.text(body), prompt_tokens(body), 8)


def test_with_budget_headers_a_token_limit_is_kept_too(serve, canned_text, tmp_path):
    limit = RateLimit(_UsageAsCharged(canned_text, 0.05), requests_per_s=100, tokens_per_min=60_000, headers=True)
    out = tmp_path / "out.jsonl"
    summary = generate(_config(serve(limit), tmp_path, per_label=15), out)
    assert summary.complete and _exact(out, 15)
    assert summary.rate_limit["allowed_tokens_per_min"] == pytest.approx(60_000, rel=0.1)
    # the bucket holds 1000 tokens: the first 16 requests (about 120 each) overdraw it, then it is kept
    assert limit.rejected <= 12, limit.log


def test_a_token_limit_is_kept_even_when_usage_understates_the_charge(serve, scripted, tmp_path):
    # the scripted replies say 20 prompt tokens; the limit charges the prompt's length / 4 + max_tokens
    limit = RateLimit(scripted(latency=0.05), requests_per_s=100, tokens_per_min=60_000, headers=True)
    summary = generate(_config(serve(limit), tmp_path, per_label=15), tmp_path / "out.jsonl")
    assert summary.complete
    report = summary.rate_limit
    usage_scale = 20 / 100  # about what `usage` says per estimated prompt token
    assert report["token_scale"] > 2 * usage_scale  # 429s for want of tokens raised the estimate
    assert limit.rejected <= 6, limit.log


def test_without_headers_the_window_converges_from_429s(serve, scripted, tmp_path):
    # 20 requests/s at 0.1 s latency: 2 requests in flight; a quarter of the 429s carry no header at all
    limit = RateLimit(scripted(latency=0.1), requests_per_s=20, headers=False, bare_share=0.25)
    out = tmp_path / "out.jsonl"
    summary = generate(_config(serve(limit), tmp_path, per_label=40), out)
    assert summary.complete and _exact(out, 40)
    report = summary.rate_limit
    assert report["limited_by"] == "429s" and report["allowed_requests_per_s"] is None
    assert 1.0 <= report["concurrency"] <= 4.0  # from 16 down to about 2
    assert limit.rejected == report["rate_limited"] == summary.retries
    assert limit.rejected <= 0.4 * summary.written, limit.log


def test_a_storm_of_429s_is_waited_out_and_the_run_ends_with_exact_counts(serve, scripted, tmp_path):
    limit = RateLimit(scripted(latency=0.02), requests_per_s=40, headers=False, bare_share=0.5)
    server = serve(limit)
    start = time.monotonic()
    limit.storm(start + 0.5, start + 3.0)
    out = tmp_path / "out.jsonl"
    # two retries would not outlast 2.5 s of 429s; the limiter waits them out uncounted
    summary = generate(_config(server, tmp_path, per_label=40, max_retries=2), out)
    assert summary.complete and _exact(out, 40)
    stormed = [t for t, status in limit.log if start + 0.5 <= t < start + 3.0]
    served_after = [t for t, status in limit.log if status == 200 and t >= start + 3.0]
    assert stormed and served_after
    assert len(stormed) <= 25  # probed, not hammered: one request at a time, pauses doubling
    assert served_after[0] - (start + 3.0) < 3.0  # back within seconds of the storm's end


def test_with_a_fixed_concurrency_the_same_storm_ends_the_run(serve, scripted, tmp_path):
    limit = RateLimit(scripted(latency=0.02), requests_per_s=40, headers=False, bare_share=0.5)
    server = serve(limit)
    limit.storm(time.monotonic(), time.monotonic() + 4.0)
    with pytest.raises(GenerationError, match="gave up after 3 attempts.*429"):
        generate(_config(server, tmp_path, per_label=40, max_retries=2, adaptive_concurrency=False),
                 tmp_path / "out.jsonl")
    assert limit.admitted == 0
    assert json.loads(summary_path(tmp_path / "out.jsonl").read_text())["rate_limit"] is None


def test_the_summary_says_where_the_limit_settled(serve, scripted, tmp_path):
    limit = RateLimit(scripted(latency=0.05), requests_per_s=10, headers=True)
    server = serve(limit)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["generate", "--task", "sms_spam", "--per-label", "15", "--out", str(out),
                                      "--backend", "openai", "--base-url", server.url, "--model", "scripted",
                                      "--concurrency", "16", "--no-embedding-filters", "--no-progress", "--no-cache"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(summary_path(out).read_text())["rate_limit"]
    row = describe(report)
    assert report["limited_by"] == "headers" and report["allowed_requests_per_s"] == pytest.approx(10, rel=0.1)
    assert "rate limit" in result.output and f"it allows {report['allowed_requests_per_s']:g} requests/s" in row
    assert "kept to the endpoint's headers" in result.output
    assert describe(None) == "fixed (--fixed-concurrency)"
