"""Admin dashboard through Flask's test client: login, studies list, study pages, figures, exports."""

from __future__ import annotations

import json
import re

import pytest
from markupsafe import escape

from annotation_server.testing import html_table as table
from subjlab.data import load_split
from subjlab.tasks import get_task

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(client, token: str):
    page = client.get("/admin/").get_data(as_text=True)
    return client.post("/admin/login", data={"csrf_token": csrf_of(page), "token": token})


def answer_all(api, study: str, worker: str, choose) -> int:
    """Let one worker answer until the API says 204; `choose(assignment)` gives the answer body."""
    token = api.session(study, worker)
    n = 0
    while (nxt := api.next(study, token)).status == 200:
        assert api.answer(nxt.json["assignment"], token, **choose(nxt.json)).status == 201
        n += 1
    assert nxt.status == 204
    return n


@pytest.fixture
def pairwise(app, api_client):
    """A pairwise study over three real tasks, answered by three workers who prefer the left task... mostly."""
    api = api_client(app)
    assert api.create_study(name="pw", kind="pairwise", judgments_per_pair=3,
                            title="Objectivity <script>alert(1)</script>").status == 201
    assert api.add_items("pw", tasks=["fewrel", "sms_spam", "tweet_sarcasm"]).status == 201
    order = ["fewrel", "sms_spam", "tweet_sarcasm"]  # fewrel wins over sms_spam wins over tweet_sarcasm
    counts = [answer_all(api, "pw", f"w{k}", lambda a: {"winner": min(a["left"]["task"], a["right"]["task"],
                                                                           key=order.index)})
              for k in range(3)]
    return api, sum(counts)


@pytest.fixture
def labeling(app, api_client, task_data):
    """A labeling study over real SMS texts with one gold item, answered by three workers."""
    api = api_client(app)
    assert api.create_study(name="lab", kind="labeling", task="sms_spam", labels_per_item=3,
                            gold_every=3).status == 201
    examples = load_split(get_task("sms_spam"), "test", data_dir=task_data, limit_per_label=2)
    gold = {"id": "gold-1", "text": "WINNER!! Claim your free prize now, text WIN to 80086", "answer": "spam"}
    r = api.add_items("lab", examples=[{"id": e.id, "text": e.text} for e in examples], gold=[gold])
    assert r.status == 201
    truth = {e.text: e.label for e in examples}
    for k, worker in enumerate(("alice", "bob", "carol")):
        # alice and bob copy the real labels; carol always says "ham" (and fails the gold item)
        answer_all(api, "lab", worker,
                   lambda a, k=k: {"label": "ham" if k == 2 else truth.get(a["item"]["text"], "spam")})
    return api, examples


def test_dashboard_asks_for_the_token_and_shows_nothing_before_login(client, pairwise):
    r = client.get("/admin/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and 'name="token"' in html and 'type="password"' in html
    assert 'id="studies"' not in html and "/admin/studies/pw" not in html
    r = client.get("/admin/studies/pw")
    assert r.status_code == 303 and "/admin/?next=" in r.headers["Location"]
    assert client.get("/admin/studies/pw/ranking.png").status_code == 303
    assert client.get("/api/v1/studies/pw/export?what=judgments").status_code == 401


def test_login_without_csrf_token_is_rejected(client, admin_token):
    client.get("/admin/")
    r = client.post("/admin/login", data={"token": admin_token})
    assert r.status_code == 400 and "Traceback" not in r.get_data(as_text=True)
    assert 'name="token"' in client.get("/admin/").get_data(as_text=True)


def test_wrong_admin_token_is_refused(client):
    r = login(client, "not-the-token")
    assert r.status_code == 403 and "not the admin token" in r.get_data(as_text=True)
    assert client.get("/admin/studies/x").status_code == 303


def test_login_lists_studies_with_progress_and_logout_needs_csrf(client, admin_token, pairwise):
    api, n = pairwise
    r = login(client, admin_token)
    assert r.status_code == 303 and r.headers["Location"].endswith("/admin/")
    html = client.get("/admin/").get_data(as_text=True)
    rows = table(html, "studies")
    assert len(rows) == 1 and rows[0][0].startswith("pw") and rows[0][1] == "pairwise (balanced)"
    assert rows[0][5] == f"{n} / 9"  # 3 pairs x 3 judgments
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert client.post("/admin/logout").status_code == 400
    r = client.post("/admin/logout", data={"csrf_token": csrf_of(html)})
    assert r.status_code == 303
    assert client.get("/admin/studies/pw").status_code == 303


def test_login_redirects_only_inside_the_dashboard(client, admin_token, pairwise):
    page = client.get("/admin/?next=/admin/studies/pw").get_data(as_text=True)
    assert 'name="next" value="/admin/studies/pw"' in page
    r = client.post("/admin/login", data={"csrf_token": csrf_of(page), "token": admin_token,
                                          "next": "/admin/studies/pw"})
    assert r.headers["Location"].endswith("/admin/studies/pw")
    client.post("/admin/logout", data={"csrf_token": csrf_of(client.get("/admin/").get_data(as_text=True))})
    page = client.get("/admin/").get_data(as_text=True)
    r = client.post("/admin/login", data={"csrf_token": csrf_of(page), "token": admin_token,
                                          "next": "https://evil.example/admin/"})
    assert r.headers["Location"].endswith("/admin/") and "evil" not in r.headers["Location"]


def test_pairwise_study_page_shows_ranking_position_bias_workers_and_export(client, admin_token, pairwise):
    api, n = pairwise
    login(client, admin_token)
    page = client.get("/admin/studies/pw")
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    ranking = table(html, "ranking")
    assert [row[1] for row in ranking] == ["fewrel", "sms_spam", "tweet_sarcasm"]
    for row in ranking:
        low, high = (float(x) for x in row[3].strip("[]").split(","))
        assert low <= float(row[2]) <= high
    assert [int(row[4]) for row in ranking] == [6, 3, 0]  # each pair judged 3 times
    expected = api.admin_get("/studies/pw/progress").json["position"]
    assert f"won {expected['left_wins']} of {n} judgments" in html
    workers = table(html, "workers")
    assert sorted(row[0] for row in workers) == ["w0", "w1", "w2"]
    assert all(int(row[1]) == 3 for row in workers)
    for figure in ("ranking", "position"):
        assert f'src="/admin/studies/pw/{figure}.png"' in html
        png = client.get(f"/admin/studies/pw/{figure}.png")
        assert png.status_code == 200 and png.content_type == "image/png" and png.data.startswith(PNG_MAGIC)
    link = re.search(r'id="export-link"[^>]*href="([^"]+)"', html, re.S).group(1).replace("&amp;", "&")
    exported = client.get(link)
    assert exported.status_code == 200
    records = [json.loads(line) for line in exported.get_data(as_text=True).splitlines()]
    assert len(records) == n and all(r["winner"] in (r["left"], r["right"]) for r in records)


def test_labeling_study_page_shows_agreement_gold_accuracy_and_export(client, admin_token, labeling):
    api, examples = labeling
    login(client, admin_token)
    html = client.get("/admin/studies/lab").get_data(as_text=True)
    report = api.admin_get("/studies/lab/agreement").json
    hist = table(html, "agreement")
    assert [(float(a), int(c)) for a, c, _ in hist] == [(round(h["agreement"], 3), h["count"])
                                                       for h in report["histogram"]]
    assert sum(int(c) for _, c, _ in hist) == len(examples)
    workers = {row[0]: row for row in table(html, "workers")}
    assert set(workers) == {"alice", "bob", "carol"}
    assert workers["alice"][3] == "100 %" and workers["carol"][3] == "0 %"
    png = client.get("/admin/studies/lab/agreement.png")
    assert png.status_code == 200 and png.data.startswith(PNG_MAGIC)
    assert 'id="ranking"' not in html and 'id="position"' not in html
    link = re.search(r'id="export-link"[^>]*href="([^"]+)"', html, re.S).group(1).replace("&amp;", "&")
    labels = [json.loads(line) for line in client.get(link).get_data(as_text=True).splitlines()]
    assert len(labels) == 3 * len(examples)
    assert {r["label"] for r in labels if r["worker"] == "carol"} == {"ham"}


def test_study_page_of_an_empty_study_renders(client, admin_token, app, api_client):
    api = api_client(app)
    assert api.create_study(name="empty", kind="pairwise").status == 201
    login(client, admin_token)
    r = client.get("/admin/studies/empty")
    assert r.status_code == 200 and "No judgments yet" in r.get_data(as_text=True)
    for figure in ("ranking", "position"):
        assert client.get(f"/admin/studies/empty/{figure}.png").data.startswith(PNG_MAGIC)


def test_unknown_study_page_is_a_clean_404(client, admin_token):
    login(client, admin_token)
    r = client.get("/admin/studies/nope")
    assert r.status_code == 404 and "Traceback" not in r.get_data(as_text=True)


def test_admin_pages_carry_no_inline_script_or_style(client, admin_token, pairwise):
    login(client, admin_token)
    for path in ("/admin/", "/admin/studies/pw"):
        html = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, tag
        assert not re.search(r"<[^>]+\sstyle=", html)
        assert str(escape("Objectivity <script>alert(1)</script>")) in html


def test_ranking_panel_says_whether_the_ranking_is_settled_enough_to_stop(client, admin_token, pairwise):
    from analysis.ranking import BradleyTerryRanker
    from analysis.stopping import StoppingRule
    from subjlab.records import Judgment

    api, n = pairwise
    login(client, admin_token)
    html = client.get("/admin/studies/pw").get_data(as_text=True)
    exported = api.admin_get("/studies/pw/export?what=judgments").text.splitlines()
    judgments = [Judgment(**{k: v for k, v in json.loads(line).items() if k in ("left", "right", "winner")})
                 for line in exported]
    expected = StoppingRule().fit(judgments, BradleyTerryRanker(n_bootstrap=0).fit(judgments)).report()
    panel = re.search(r'<p class="flash" id="ranking-stopping">(.*?)</p>', html, re.S).group(1)
    assert f"= {expected.p_settled:.2f} (stop at 0.9)" in " ".join(panel.split())
    assert panel.strip().startswith("You can stop" if expected.can_stop else "Keep collecting")
    stopping = api.admin_get("/studies/pw/ranking").json["stopping"]
    assert stopping["p_settled"] == expected.p_settled and stopping["n_judgments"] == n
