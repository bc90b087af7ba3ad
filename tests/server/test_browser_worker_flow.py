"""Headless Chromium against a real `subjlab serve` (gunicorn): a worker clicks through a pairwise and a
labeling study (consent -> units -> completion code); the answers are checked in the admin export."""

from __future__ import annotations

import json

import pytest

from subjlab.data import load_split
from subjlab.tasks import OBJECTIVITY_DEFINITION, get_task

pytestmark = pytest.mark.browser

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TIMEOUT_MS = 15_000


class PageWatch:
    """Records what must never happen on a page: dialogs (injected script ran), CSP violations, JS errors."""

    def __init__(self, page) -> None:
        self.dialogs: list[str] = []
        self.problems: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("console", self._console)
        page.on("response", self._response)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status} for {response.url}")

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.problems.append(f"console: {msg.text}")


def export(api, study: str, what: str) -> list[dict]:
    r = api.request("GET", f"/studies/{study}/export?what={what}", api.admin_token)
    assert r.status == 200, r.text
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def consent(page, url: str, study: str, worker_id: str) -> None:
    """Open the instructions, enter the worker id, tick consent, start."""
    page.goto(f"{url}/study/{study}")
    page.fill("#worker_id", worker_id)
    page.check("#consent_box")
    page.click("#start")
    page.wait_for_url(f"**/study/{study}/work")


def wait_for_unit(page, answered: int) -> None:
    """Wait until the page shows a fresh unit after `answered` answers, with its buttons enabled."""
    page.wait_for_function(
        """(n) => { const t = document.getElementById('progress-text').textContent;
                   const b = document.querySelector('button.choose, #label-buttons button');
                   return t.includes('(' + n + ' answered)') && b && !b.disabled; }""",
        arg=answered, timeout=TIMEOUT_MS)


def completion_code(page, study: str) -> str:
    page.wait_for_url(f"**/study/{study}/done", timeout=TIMEOUT_MS)
    code = page.text_content("#completion-code").strip()
    assert code
    return code


def test_worker_clicks_through_a_pairwise_study_on_a_phone_and_the_judgments_land(browser, live_server,
                                                                                   api_client):
    api = api_client(live_server.url)
    tasks = ["fewrel", "sms_spam", "humor"]
    assert api.create_study(name="b-pairwise", kind="pairwise", judgments_per_pair=1).status == 201
    assert api.add_items("b-pairwise", tasks=tasks).status == 201
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    watch = PageWatch(page)
    consent(page, live_server.url, "b-pairwise", "phone-worker")
    assert page.text_content("#pair-definition").strip() == OBJECTIVITY_DEFINITION
    expected = []
    for k in range(3):  # 3 pairs, one judgment each
        wait_for_unit(page, k)
        assert page.text_content("#progress-text").startswith(f"Unit {k + 1} of 3")
        left = page.get_attribute("#choose-left", "data-task")
        right = page.get_attribute("#choose-right", "data-task")
        assert {left, right} <= set(tasks) and left != right
        assert page.locator("#left-examples li").count() >= 1 and page.locator("#right-examples li").count() >= 1
        assert page.text_content("#left-description").strip() == get_task(left).description
        winner = min(left, right, key=tasks.index)  # the worker's rule: earlier in `tasks` is more objective
        if k == 0:  # on a phone the cards stack and the page never scrolls sideways
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            left_box, right_box = page.locator("#card-left").bounding_box(), page.locator("#card-right").bounding_box()
            assert right_box["y"] >= left_box["y"] + left_box["height"]
        if k == 1:  # keyboard: "1" picks the left task, "2" the right one
            page.keyboard.press("1" if winner == left else "2")
        else:
            page.tap(f"#choose-{'left' if winner == left else 'right'}")
        expected.append((left, right, winner))
    code = completion_code(page, "b-pairwise")
    assert not watch.dialogs and not watch.problems, watch.problems
    context.close()

    got = [(r["left"], r["right"], r["winner"]) for r in export(api, "b-pairwise", "judgments")
           if r["worker"] == "phone-worker"]
    assert sorted(got) == sorted(expected)
    assert len({frozenset(p[:2]) for p in got}) == 3  # never the same pair twice
    me_code = api.request("GET", "/studies/b-pairwise/workers", api.admin_token).json
    assert [w["answered"] for w in me_code["workers"] if w["worker_id"] == "phone-worker"] == [3]
    assert len(code) >= 6


def test_worker_labels_a_whole_study_and_injected_script_stays_text(browser, live_server, api_client,
                                                                      task_data, tmp_path):
    api = api_client(live_server.url)
    real = load_split(get_task("sms_spam"), "test", data_dir=task_data, limit_per_label=2)
    truth = {e.text: e.label for e in real}
    truth[XSS] = "spam"
    assert api.create_study(name="b-labeling", kind="labeling", task="sms_spam", labels_per_item=1,
                            title="SMS <b>labels</b>").status == 201
    items = [{"id": e.id, "text": e.text} for e in real] + [{"id": "xss-item", "text": XSS}]
    assert api.add_items("b-labeling", examples=items).status == 201
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    watch = PageWatch(page)
    consent(page, live_server.url, "b-labeling", "desk-worker")
    assert page.text_content("header .brand") == "SMS <b>labels</b>"
    seen_xss = False
    for k in range(len(items)):
        wait_for_unit(page, k)
        text = page.text_content("#item-text")
        assert text in truth, f"unexpected item text {text[:80]!r}"
        if text == XSS:
            seen_xss = True
            assert page.locator("#item-text script, #item-text img").count() == 0
            page.screenshot(path=str(tmp_path / "xss-unit.png"))
        label = truth[text]
        if k == 0:  # keyboard: digit k picks the k-th label button
            index = page.locator("#label-buttons button").evaluate_all(
                "(bs, l) => bs.findIndex(b => b.dataset.label === l)", label)
            page.keyboard.press(str(index + 1))
        else:
            page.click(f'#label-buttons button[data-label="{label}"]')
    code = completion_code(page, "b-labeling")
    assert seen_xss
    assert not watch.dialogs, f"injected script ran: {watch.dialogs}"
    assert not watch.problems, watch.problems
    context.close()

    labels = {r["item"]: r["label"] for r in export(api, "b-labeling", "labels") if r["worker"] == "desk-worker"}
    assert labels == {e.id: e.label for e in real} | {"xss-item": "spam"}
    me = api.request("GET", "/studies/b-labeling/workers", api.admin_token).json["workers"]
    assert [w["answered"] for w in me if w["worker_id"] == "desk-worker"] == [len(items)]
    assert len(code) >= 6


def test_admin_logs_in_and_sees_the_dashboard_with_its_figures(browser, live_server, api_client):
    api = api_client(live_server.url)
    assert api.create_study(name="b-admin", kind="pairwise", judgments_per_pair=2).status == 201
    assert api.add_items("b-admin", tasks=["humor", "tweet_sarcasm"]).status == 201
    for worker in ("a1", "a2"):
        token = api.session("b-admin", worker)
        nxt = api.next("b-admin", token)
        assert api.answer(nxt.json["assignment"], token, winner="humor").status == 201
    context = browser.new_context()
    page = context.new_page()
    watch = PageWatch(page)
    page.goto(f"{live_server.url}/admin/studies/b-admin")
    page.fill("#token", live_server.admin_token)
    page.click("#login")
    page.wait_for_url("**/admin/studies/b-admin")
    assert [t.strip() for t in page.locator("#ranking tbody td:nth-child(2)").all_text_contents()] == \
        ["humor", "tweet_sarcasm"]
    for img in ("#ranking-plot", "#position-plot"):
        page.wait_for_function("(s) => { const i = document.querySelector(s); return i.complete && i.naturalWidth > 0; }",
                               arg=img, timeout=TIMEOUT_MS)
    with page.expect_download() as download:
        page.click("#export-link")
    lines = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["winner"] == "humor" for line in lines)
    assert not watch.dialogs and not watch.problems, watch.problems
    context.close()
