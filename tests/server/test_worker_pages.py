"""Worker pages through Flask's test client: consent, CSRF, the unit page shell, completion, escaping."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markupsafe import escape
from sqlalchemy import func, select

from annotation_server.db import session_scope
from annotation_server.models import WorkerSession
from subjlab.data import load_split
from subjlab.tasks import OBJECTIVITY_DEFINITION, get_task

XSS = "<script>alert(1)</script>"
HTML_TASK = {
    "name": "xss_task",
    "title": "Title <script>alert('title')</script>",
    "description": "Decide <b>bold</b> & <img src=x onerror=alert(2)>",
    "labels": ["yes", "no"],
    "label_descriptions": {"yes": "it is <i>so</i>", "no": "<script>alert(3)</script>"},
    "context": "You write short texts.",
    "style": "a sentence",
}


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def worker_token_of(html: str) -> str:
    """Return the worker token the unit page hands to its script."""
    match = re.search(r'<meta name="subjlab-worker-token" content="([^"]+)">', html)
    assert match, "no worker token on the unit page"
    return match.group(1)


class _Tags(HTMLParser):
    """Collects every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_safe_page(html: str) -> None:
    """No injected markup became a tag, no inline script/style/handler (the CSP forbids them), no traceback."""
    assert "<script>alert" not in html
    assert "Traceback" not in html
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        if tag == "script":
            assert attrs.get("src") or attrs.get("type") == "application/json", f"inline script {attrs}"
        assert "style" not in attrs, f"inline style attribute on <{tag}>"
        handlers = [a for a in attrs if a.startswith("on")]
        assert not handlers, f"inline event handler {handlers} on <{tag}>"
    assert not any(tag in ("b", "i", "img") for tag, _ in parser.tags), "injected markup became a tag"


def start_worker(client, study: str, worker_id: str) -> str:
    """Go through the consent form as a browser would; return the worker token of the unit page."""
    page = client.get(f"/study/{study}").get_data(as_text=True)
    r = client.post(f"/study/{study}/start",
                    data={"csrf_token": csrf_of(page), "worker_id": worker_id, "consent": "yes"})
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/study/{study}/work")
    work = client.get(f"/study/{study}/work")
    assert work.status_code == 200
    return worker_token_of(work.get_data(as_text=True))


def session_count(app) -> int:
    with app.app_context(), session_scope() as db:
        return db.scalar(select(func.count()).select_from(WorkerSession)) or 0


@pytest.fixture
def studies(app, api_client, task_data):
    """A pairwise study over three registry tasks and a labeling study over real SMS texts plus an XSS item."""
    api = api_client(app)
    assert api.create_study(name="pw", kind="pairwise", judgments_per_pair=1).status == 201
    assert api.add_items("pw", tasks=["sms_spam", "humor", "fewrel"]).status == 201
    assert api.create_study(name="lab", kind="labeling", task="sms_spam", labels_per_item=2).status == 201
    texts = load_split(get_task("sms_spam"), "test", data_dir=task_data, limit_per_label=1)
    examples = [{"id": e.id, "text": e.text} for e in texts] + [{"id": "xss", "text": XSS}]
    assert api.add_items("lab", examples=examples).status == 201
    assert api.create_study(name="xss", kind="labeling", task=HTML_TASK, labels_per_item=1,
                            title="Study <script>alert(4)</script>",
                            instructions="Read <script>alert(5)</script> carefully").status == 201
    assert api.add_items("xss", examples=[{"id": "i1", "text": XSS}]).status == 201
    return api


def test_pairwise_consent_page_shows_the_objectivity_definition_and_a_csrf_form(client, studies):
    r = client.get("/study/pw")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert str(escape(OBJECTIVITY_DEFINITION)) in html
    assert 'action="/study/pw/start"' in html and csrf_of(html)
    assert 'name="worker_id"' in html and 'name="consent"' in html
    assert_safe_page(html)


def test_labeling_consent_page_shows_the_task_and_its_labels(client, studies):
    html = client.get("/study/lab").get_data(as_text=True)
    assert "SMS spam detection" in html
    assert "<dt>ham</dt>" in html and "<dt>spam</dt>" in html
    assert OBJECTIVITY_DEFINITION not in html
    assert_safe_page(html)


def test_consent_form_without_csrf_token_is_rejected_and_starts_no_session(app, client, studies):
    client.get("/study/lab")  # the browser has a session (and a CSRF token) ...
    r = client.post("/study/lab/start", data={"worker_id": "w1", "consent": "yes"})  # ... but the form lacks it
    assert r.status_code == 400
    assert "CSRF" in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    assert session_count(app) == 0
    assert client.get("/study/lab/work").status_code == 303


def test_consent_form_with_a_wrong_csrf_token_is_rejected(app, client, studies):
    page = client.get("/study/lab").get_data(as_text=True)
    wrong = csrf_of(page)[::-1]
    r = client.post("/study/lab/start", data={"csrf_token": wrong, "worker_id": "w1", "consent": "yes"})
    assert r.status_code == 400
    assert session_count(app) == 0


def test_consent_form_from_another_browser_session_is_rejected(app, client, studies):
    token_from_other_browser = csrf_of(app.test_client().get("/study/lab").get_data(as_text=True))
    client.get("/study/lab")
    r = client.post("/study/lab/start",
                    data={"csrf_token": token_from_other_browser, "worker_id": "w1", "consent": "yes"})
    assert r.status_code == 400
    assert session_count(app) == 0


def test_consent_box_must_be_ticked(app, client, studies):
    page = client.get("/study/lab").get_data(as_text=True)
    r = client.post("/study/lab/start", data={"csrf_token": csrf_of(page), "worker_id": "w1"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "tick the consent box" in html and 'value="w1"' in html
    assert session_count(app) == 0


def test_invalid_worker_id_is_shown_escaped_in_the_form_error(app, client, studies):
    page = client.get("/study/lab").get_data(as_text=True)
    r = client.post("/study/lab/start", data={"csrf_token": csrf_of(page), "worker_id": XSS, "consent": "yes"})
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "not a valid identifier" in html
    assert str(escape(XSS)) in html
    assert_safe_page(html)
    assert session_count(app) == 0


def test_started_worker_gets_a_unit_page_whose_token_works_on_the_api(client, studies):
    token = start_worker(client, "lab", "worker-1")
    me = studies.request("GET", "/studies/lab/me", token)
    assert me.status == 200 and me.json["worker_id"] == "worker-1"
    page = client.get("/study/lab/work")
    assert page.headers["Cache-Control"] == "no-store"  # the page carries the worker's token
    html = page.get_data(as_text=True)
    assert 'data-api-base="/api/v1"' in html and 'data-study="lab"' in html
    assert 'src="/static/worker.js"' in html
    assert_safe_page(html)


def test_unit_page_without_a_session_sends_the_worker_to_the_consent_page(client, studies):
    r = client.get("/study/pw/work")
    assert r.status_code == 303 and r.headers["Location"].endswith("/study/pw")


def test_static_script_and_stylesheet_are_served(client):
    for path, kind in (("/static/worker.js", "javascript"), ("/static/admin.js", "javascript"),
                       ("/static/subjlab.css", "css")):
        r = client.get(path)
        assert r.status_code == 200 and kind in r.content_type
    js = client.get("/static/worker.js").get_data(as_text=True)
    assert "textContent" in js
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, f"worker.js uses an HTML/code sink: {sink}"


def test_unknown_study_gives_a_clean_404_page(client, studies):
    r = client.get("/study/no-such-study")
    assert r.status_code == 404
    assert "Traceback" not in r.get_data(as_text=True)


def test_completion_page_shows_the_code_once_every_unit_is_answered(client, studies):
    token = start_worker(client, "lab", "finisher")
    assert "Not finished yet" in client.get("/study/lab/done").get_data(as_text=True)
    answered = 0
    while True:
        nxt = studies.next("lab", token)
        if nxt.status == 204:
            break
        assert studies.answer(nxt.json["assignment"], token, label="ham").status == 201
        answered += 1
    me = studies.request("GET", "/studies/lab/me", token).json
    assert me["finished"] and me["completion_code"]
    html = client.get("/study/lab/done").get_data(as_text=True)
    assert f'<span class="code" id="completion-code">{me["completion_code"]}</span>' in html
    assert f"You answered {answered} units" in html


def test_mturk_worker_id_prefills_the_form_and_a_preview_shows_no_form(client, studies):
    html = client.get("/study/lab?workerId=A1TURKER&assignmentId=3AB&hitId=9XY").get_data(as_text=True)
    assert 'value="A1TURKER"' in html
    preview = client.get("/study/lab?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE").get_data(as_text=True)
    assert "This is a preview" in preview and 'name="worker_id"' not in preview


def test_closed_study_takes_no_new_workers(client, studies):
    assert studies.request("POST", "/studies/lab/close", studies.admin_token).status == 200
    html = client.get("/study/lab").get_data(as_text=True)
    assert "This study is closed" in html and 'name="worker_id"' not in html


def test_html_in_task_study_and_item_texts_is_escaped_on_every_worker_page(client, studies):
    consent = client.get("/study/xss").get_data(as_text=True)
    for raw in (HTML_TASK["title"], HTML_TASK["description"], HTML_TASK["label_descriptions"]["no"],
                "Study <script>alert(4)</script>", "Read <script>alert(5)</script> carefully"):
        assert str(escape(raw)) in consent, raw
    assert_safe_page(consent)
    token = start_worker(client, "xss", "w-xss")
    assert_safe_page(client.get("/study/xss/work").get_data(as_text=True))
    nxt = studies.next("xss", token)
    assert nxt.json["item"]["text"] == XSS  # the API returns data verbatim; the page script shows it as text
    assert studies.answer(nxt.json["assignment"], token, label="yes").status == 201
    done = client.get("/study/xss/done").get_data(as_text=True)
    assert "Thank you" in done
    assert_safe_page(done)
    assert_safe_page(client.get("/study/pw").get_data(as_text=True))
