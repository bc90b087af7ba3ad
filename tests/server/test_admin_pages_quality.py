"""The admin study page's quality control, through Flask's test client: flagged workers with their reasons,
what exclusion leaves out, and (on request, cached) worker-quality models compared with majority vote
(labels: Dawid-Skene, MACE) or with choix's Bradley-Terry (pairs: noisy Bradley-Terry), with agreement
and accuracy on gold. Studies are built through the JSON API over real data, with a settable clock."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from tests.support.crowd import answer_everything as work
from tests.support.crowd import answer_quality_study
from tests.support.pages import html_table as table

PAIR_TASKS = ["fewrel", "sms_spam", "financial_phrasebank", "tweet_sarcasm"]  # most to least objective here


def text_of(html: str, element_id: str) -> str:
    """The text of the element with this id (tags stripped, whitespace collapsed)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(p|span|h3)>', html, re.S)
    assert match, element_id
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def login(client, token: str) -> None:
    page = client.get("/admin/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/admin/login", data={"csrf_token": csrf, "token": token}).status_code == 303


@pytest.fixture
def quality_app(make_app, clock):
    return make_app(CLOCK=clock)


@pytest.fixture
def labeled(quality_app, clock, api_client, task_data):
    """Labeling study "qc" (6 real SMS messages, 4 labels each, 2 gold items + 1 attention check every 2nd
    unit): careful-1/2 answer truly at 6 s a unit, `hasty` truly at 0.5 s, `careless` falsely at 6 s."""
    api = api_client(quality_app)
    answer_quality_study(api, clock, task_data, "qc")


@pytest.fixture
def judged(quality_app, clock, api_client):
    """Pairwise study "pw" over 4 real tasks (5 judgments per pair; an attention check and a gold pair every
    2nd unit, each in its own pair's place in every worker's sequence: a worker never sees a pair twice):
    three steady workers follow PAIR_TASKS' order, `contrarian` always picks the other task.
    Returns a function answering as one more steady worker (to change the data)."""
    api = api_client(quality_app)
    assert api.create_study(name="pw", kind="pairwise", judgments_per_pair=5, gold_every=2,
                            title="Objectivity <i>ranking</i>").status == 201
    gold = [{"id": "attention-news-vs-irony", "left": "fewrel", "right": "tweet_sarcasm", "answer": "fewrel"},
            {"id": "gold-spam-vs-irony", "left": "tweet_sarcasm", "right": "sms_spam", "answer": "sms_spam"}]
    assert api.add_items("pw", tasks=PAIR_TASKS, gold=gold).status == 201

    def answer_as(worker: str) -> int:
        pick = max if worker == "contrarian" else min
        return work(api, clock, "pw", worker, 5.0,
                    lambda a: {"winner": pick(a["left"]["task"], a["right"]["task"], key=PAIR_TASKS.index)})

    for worker in ("steady-1", "steady-2", "steady-3", "contrarian"):
        assert answer_as(worker) == 6  # 4 pairs + the 2 checks on the other 2
    return answer_as


def test_study_page_lists_flagged_workers_with_reasons_and_what_exclusion_leaves_out(quality_app, admin_token, labeled):
    client = quality_app.test_client()
    login(client, admin_token)
    r = client.get("/admin/studies/qc")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert text_of(html, "exclusion-summary") == \
        "Excluding the flagged workers leaves out 12 of 24 labels from 2 workers."
    assert table(html, "excluded-by-reason") == [["attention", "6"], ["gold", "6"], ["too_fast", "6"]]
    assert table(html, "flagged") == [
        ["careless", "6", "attention: failed 1 of 1 attention checks; gold: gold accuracy 0.00 < 0.60 (0/3)"],
        ["hasty", "6", "too_fast: median 0.5 s per unit < 2.0 s"]]
    assert "more than 0 failed attention check(s); gold accuracy below 0.60 once 3 gold items were answered; " \
           "median time per unit below 2.0 s" in text_of(html, "exclusion-rules")
    workers = {row[0]: row for row in table(html, "workers")}
    assert workers["careless"][7:] == ["1 / 1", "0.00 (6)", "attention, gold"]
    assert workers["careful-1"][7:] == ["0 / 1", "1.00 (6)", "–"]
    assert workers["hasty"][9] == "too_fast"
    # the models are not fitted for the normal page: only a link asks for them
    assert 'id="model-comparison"' not in html and 'id="model-skills"' not in html
    link = re.search(r'id="compare-models" href="([^"]+)"', html).group(1)
    assert link == "/admin/studies/qc?quality=1#models"


def test_labeling_models_on_request_show_agreement_with_majority_vote_and_accuracy_on_gold(
        quality_app, admin_token, labeled):
    client = quality_app.test_client()
    login(client, admin_token)
    html = client.get("/admin/studies/qc?quality=1").get_data(as_text=True)
    # 3 truthful labels and 1 false on every item and every check: every method finds the truth
    assert table(html, "model-comparison") == [
        ["Majority vote (all workers)", "1.000", "1.000 (3/3)"],
        ["Majority vote, flagged workers excluded", "1.000", "1.000 (3/3)"],
        ["Dawid–Skene (crowd-kit)", "1.000", "1.000 (3/3)"],
        ["MACE (crowd-kit)", "1.000", "1.000 (3/3)"]]
    assert "agreement with majority vote (data items)" in html
    note = text_of(html, "models-note")
    assert note.startswith("6 items; 3 gold items answered; computed")
    skills = {row[0]: row[1:] for row in table(html, "model-skills")}
    assert set(skills) == {"careful-1", "careful-2", "careless", "hasty"}
    assert skills["careless"][0] == "yes" and skills["hasty"][0] == "yes" and skills["careful-1"][0] == "–"
    for column in (1, 2, 3):  # majority-vote agreement, Dawid-Skene P(correct), MACE P(not spamming)
        values = {w: float(s[column]) for w, s in skills.items()}
        assert values["careless"] < min(values[w] for w in ("careful-1", "careful-2", "hasty")), column
    assert float(skills["careless"][1]) == 0.0 and float(skills["careful-1"][1]) == 1.0


def test_model_comparison_is_cached_until_new_answers_arrive(quality_app, admin_token, judged, clock):
    client = quality_app.test_client()
    login(client, admin_token)
    first = text_of(client.get("/admin/studies/pw?quality=1").get_data(as_text=True), "models-computed-at")
    clock.advance(120)
    again = text_of(client.get("/admin/studies/pw?quality=1").get_data(as_text=True), "models-computed-at")
    assert again == first  # same data: not refitted
    assert judged("late-worker") == 6  # new answers (the 5th judgment of every pair without a check)
    html = client.get("/admin/studies/pw?quality=1").get_data(as_text=True)
    assert text_of(html, "models-computed-at") != first
    assert "late-worker" in {row[0] for row in table(html, "model-skills")}


def test_pairwise_models_compare_noisy_bradley_terry_with_choix_and_score_gold_pairs(quality_app, admin_token, judged):
    client = quality_app.test_client()
    login(client, admin_token)
    plain = client.get("/admin/studies/pw").get_data(as_text=True)
    assert text_of(plain, "exclusion-summary") == \
        "Excluding the flagged workers leaves out 4 of 16 judgments from 1 worker."
    assert 'id="model-comparison"' not in plain
    assert table(plain, "flagged") == [["contrarian", "4", "attention: failed 1 of 1 attention checks"]]
    html = client.get("/admin/studies/pw?quality=1").get_data(as_text=True)
    rows = {row[0]: row[1:] for row in table(html, "model-comparison")}
    assert list(rows) == ["Bradley–Terry (choix; the ranking above)", "Bradley–Terry (choix), flagged workers excluded",
                          "Win rate", "Bradley–Terry (crowd-kit, tol=0)", "Noisy Bradley–Terry (crowd-kit)"]
    noisy = "Noisy Bradley–Terry (crowd-kit)"
    for name, (rho, gold) in rows.items():  # 3 of 4 workers agree on one order: every exact method recovers it
        if name == noisy:
            continue
        assert float(rho) == pytest.approx(1.0), name
        assert gold == "1.000 (2/2)", name
    # crowd-kit's noisy Bradley-Terry is a non-convex fit: on 4 tasks and 16 judgments whose pairs and
    # sides depend on the random slot choice it mostly recovers the order but has been seen at ρ 0.4
    # (one run in dozens). Its quality is proven on seeded data in
    # tests/mturk/test_quality.py::test_pair_models_recover_the_objectivity_order_and_bradley_terry_converges;
    # here the page must show it, scored like the others.
    assert -1.0 <= float(rows[noisy][0]) <= 1.0
    assert rows[noisy][1] in ("1.000 (2/2)", "0.500 (1/2)", "0.000 (0/2)")
    assert "Spearman correlation of task scores with Bradley–Terry (choix)" in html
    assert text_of(html, "models-note").startswith("4 tasks; 2 gold pairs; computed")
    skills = {row[0]: row[1:] for row in table(html, "model-skills")}
    assert set(skills) == {"steady-1", "steady-2", "steady-3", "contrarian"}
    assert skills["contrarian"][0] == "yes" and skills["steady-1"][0] == "–"
    assert all(0.0 <= float(s[1]) <= 1.0 for s in skills.values())  # noisy Bradley-Terry skill (a probability)
    assert "noisy Bradley–Terry skill" in html


def test_quality_page_is_csp_clean_escaped_and_needs_login(quality_app, admin_token, judged):
    client = quality_app.test_client()
    anonymous = client.get("/admin/studies/pw?quality=1")
    assert anonymous.status_code == 303 and "quality%3D1" in anonymous.headers["Location"]
    login(client, admin_token)
    r = client.get("/admin/studies/pw?quality=1")
    html = r.get_data(as_text=True)
    assert 'id="model-comparison"' in html
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"<[^>]+\sstyle=", html)
    assert "<i>ranking</i>" not in html and str(escape("Objectivity <i>ranking</i>")) in html
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in csp and "frame-ancestors 'none'" in csp


def test_quality_section_of_a_study_without_answers(quality_app, admin_token, api_client):
    api = api_client(quality_app)
    assert api.create_study(name="fresh", kind="labeling", task="sms_spam").status == 201
    client = quality_app.test_client()
    login(client, admin_token)
    html = client.get("/admin/studies/fresh?quality=1").get_data(as_text=True)
    assert text_of(html, "exclusion-summary") == "No worker is flagged: nothing is excluded (0 labels)."
    assert text_of(html, "model-comparison") == "Nothing to aggregate yet."
