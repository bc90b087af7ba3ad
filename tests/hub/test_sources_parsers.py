"""Each task's raw public format read into rows (`subjlab.sources.parsers`), on saved-copy fixtures."""

from __future__ import annotations

import csv
import json
import zipfile

import pytest

from subjlab.sources.parsers import PARSERS, SourceFormatError
from subjlab.sources.registry import SOURCES


def parse(task, folder):
    return PARSERS[task]({f.name: folder / task / f.name for f in SOURCES[task].files})


def test_ag_news_joins_title_and_description_and_keeps_both_fields(saved_copy):
    parsed = parse("ag_news", saved_copy)
    assert parsed.labels == ("World", "Sports", "Business", "Sci/Tech")
    train, test = parsed.splits["train"], parsed.splits["test"]
    assert len(train) == 12 and len(test) == 5
    assert train[3] == {"text": "Lab Unveils Quieter Fan  Researchers at an imaginary lab showed a cooling fan that is "
                                "half as loud\\as current models.", "label": "Sci/Tech", "title": "Lab Unveils Quieter Fan",
                        "description": " Researchers at an imaginary lab showed a cooling fan that is half as loud\\as "
                                       "current models.", "source_row": 3}
    assert test[4]["title"] == 'Retailer Says "Best Season Ever"' and test[4]["label"] == "Business"
    assert [r["label"] for r in train[:4]] == ["Business", "World", "Sports", "Sci/Tech"]


def test_imdb_reads_the_archive_tree_ignoring_unlabelled_reviews(saved_copy):
    parsed = parse("imdb", saved_copy)
    train, test = parsed.splits["train"], parsed.splits["test"]
    assert [r["review_id"] for r in train] == ["train/neg/0_2", "train/neg/1_4", "train/neg/3_1", "train/pos/0_9",
                                               "train/pos/1_8", "train/pos/2_10", "train/pos/10_7"]
    assert train[3] == {"text": "A warm, funny film about two invented bakers.<br /><br />Loved it.", "label": "pos",
                        "rating": 9, "review_id": "train/pos/0_9"}
    assert [r["review_id"] for r in test] == ["test/neg/0_1", "test/neg/5_3", "test/pos/0_10", "test/pos/1_7"]
    assert "stand-in" in parsed.licence_texts["aclImdb/README"]


def test_sms_spam_skips_the_copiers_header_and_numbers_lines_from_it(saved_copy):
    parsed = parse("sms_spam", saved_copy)
    pool = parsed.pool
    assert len(pool) == 24 and parsed.stats["raw_counts"] == {"ham": 18, "spam": 6}
    assert pool[0] == {"text": "Go until jurong point, crazy.. Available only in bugis n great world la e buffet... "
                               "Cine there got amore wat...", "label": "ham", "source_line": 1}
    assert [r["source_line"] for r in pool if r["text"] == "Sorry, I'll call later"] == [23, 24]


def test_financial_phrasebank_decodes_latin1_and_takes_the_strictest_agreement(saved_copy):
    parsed = parse("financial_phrasebank", saved_copy)
    pool = parsed.pool
    assert len(pool) == 23
    assert parsed.stats["raw_line_counts"] == {"50": 23, "66": 17, "75": 13, "100": 9}
    assert parsed.stats["nesting_violations"] == {"66_subset_of_50": 0, "75_subset_of_66": 0, "100_subset_of_75": 0}
    sepp = next(r for r in pool if r["text"].startswith("Clothing retail chain"))
    assert "Sepp+\u00f1l+\u00f1 's sales" in sepp["text"] and not sepp["text"].endswith("\r")
    agreement = {}
    members = saved_copy / "financial_phrasebank" / "FinancialPhraseBank-v1.0.zip"
    with zipfile.ZipFile(members) as zf:
        for level, name in (("50", "50Agree"), ("66", "66Agree"), ("75", "75Agree"), ("100", "AllAgree")):
            for line in zf.read(f"FinancialPhraseBank-v1.0/Sentences_{name}.txt").decode("latin-1").split("\r\n"):
                if line:
                    agreement[tuple(line.rsplit("@", 1))] = level  # stricter files come later and win
    assert all(r["agreement"] == agreement[(r["text"], r["label"])] for r in pool)
    assert {r["agreement"] for r in pool} == {"50", "66", "75", "100"}
    assert [r["source_line"] for r in pool] == list(range(1, 24))
    assert "Creative Commons Attribution-NonCommercial-ShareAlike 3.0" in \
        parsed.licence_texts["FinancialPhraseBank-v1.0/License.txt"]


def test_reddit_emotion_keeps_single_label_comments_with_their_ekman_category(saved_copy):
    parsed = parse("reddit_emotion", saved_copy)
    assert len(parsed.labels) == 28 and parsed.labels[-1] == "neutral"
    assert parsed.stats["multi_label_rows_excluded"] == {"train": 3, "test": 0}
    train = parsed.splits["train"]
    assert len(train) == 15 and len(parsed.splits["test"]) == 9
    assert train[2] == {"text": "WHY THE FUCK IS BAYLESS ISOING", "label": "anger", "ekman_label": "anger", "id": "eezlygj"}
    assert {(r["label"], r["ekman_label"]) for r in train} >= {("annoyance", "anger"), ("confusion", "surprise"),
                                                               ("caring", "joy"), ("neutral", "neutral")}


def test_fewrel_keeps_the_four_relations_once_each_with_token_indices(saved_copy):
    parsed = parse("fewrel", saved_copy)
    assert parsed.labels == ("country", "league", "screenwriter", "tributary")
    assert parsed.stats["unique_instances_per_relation"] == {"country": 7, "league": 7, "screenwriter": 7, "tributary": 9}
    raw = json.loads((saved_copy / "fewrel" / "train_wiki.json").read_text(encoding="utf-8"))
    first = raw["P118"][0]
    row = next(r for r in parsed.pool if r["label"] == "league")
    assert row == {"text": " ".join(first["tokens"]), "label": "league", "wikidata_pid": "P118",
                   "head": " ".join(first["tokens"][i] for i in first["h"][2][0]), "head_token_idx": first["h"][2][0],
                   "tail": " ".join(first["tokens"][i] for i in first["t"][2][0]), "tail_token_idx": first["t"][2][0],
                   "head_qid": first["h"][1], "tail_qid": first["t"][1]}
    for r in parsed.pool:
        tokens = r["text"].split(" ")
        assert " ".join(tokens[i] for i in r["head_token_idx"]) == r["head"]
    assert list(parsed.alt) == ["alt_P403_mouth_of_the_watercourse"]
    assert {r["wikidata_pid"] for r in parsed.alt["alt_P403_mouth_of_the_watercourse"]} == {"P403"}
    assert all(r["wikidata_pid"] != "P177" for r in parsed.pool)


def test_fewrel_mentions_are_the_tokens_they_cover_and_a_missing_relation_is_named(tmp_path):
    # FewRel's own mention strings can differ from its tokens ("ak-sar-ben" vs "ak - sar - ben")
    inst = {"tokens": ["The", "Ak", "-", "Sar", "-", "Ben", "Bridge", "crosses", "the", "Platte", "."],
            "h": ["ak-sar-ben bridge", "Q1", [[1, 2, 3, 4, 5, 6]]], "t": ["platte", "Q2", [[9]]]}
    data = {pid: [inst] for pid in ("P17", "P118", "P58", "P974", "P403")}
    (tmp_path / "train_wiki.json").write_text(json.dumps(data), encoding="utf-8")
    row = PARSERS["fewrel"]({"train_wiki.json": tmp_path / "train_wiki.json"}).pool[0]
    assert row["head"] == "Ak - Sar - Ben Bridge" and row["tail"] == "Platte"
    del data["P58"]
    (tmp_path / "train_wiki.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SourceFormatError, match="relation P58 \\(screenwriter\\) is missing"):
        PARSERS["fewrel"]({"train_wiki.json": tmp_path / "train_wiki.json"})


@pytest.mark.parametrize("task,train_labels,test_labels", [
    ("tweet_irony", ["irony", "non_irony", "irony", "non_irony", "irony", "non_irony"], ["irony", "non_irony", "irony"]),
    ("tweet_emotion", ["anger", "joy", "optimism", "sadness"] * 2, ["anger", "joy", "optimism", "sadness"]),
])
def test_tweeteval_pairs_text_and_label_lines_through_mapping(saved_copy, task, train_labels, test_labels):
    parsed = parse(task, saved_copy)
    assert [r["label"] for r in parsed.splits["train"]] == train_labels
    assert [r["label"] for r in parsed.splits["test"]] == test_labels
    texts = (saved_copy / task / "train_text.txt").read_text(encoding="utf-8").split("\n")
    assert [r["text"] for r in parsed.splits["train"]] == texts[:-1]  # trailing spaces kept
    assert parsed.splits["train"][1]["label_id"] == (0 if task == "tweet_irony" else 1)
    assert [r["source_line"] for r in parsed.splits["test"]] == list(range(1, len(test_labels) + 1))


def test_sarcasm_news_reads_flag_and_headline(saved_copy):
    pool = parse("sarcasm_news", saved_copy).pool
    assert len(pool) == 12
    assert pool[2] == {"text": "fictional museum reopens after renovation, adds new wing", "label": "not_sarcastic",
                       "is_sarcastic": 0, "source_row": 2}
    assert [r["is_sarcastic"] for r in pool] == [0, 1] * 6


def test_humor_reads_train_and_dev_as_the_sources_split(saved_copy):
    parsed = parse("humor", saved_copy)
    train, test = parsed.splits["train"], parsed.splits["test"]
    assert len(train) == 16 and len(test) == 10
    assert test[0] == {"text": "What kind of cat should you take into the  desert ? a first aid kitty !", "label": "humor",
                       "humor": True, "source_row": 0}
    assert train[0]["humor"] is False and train[0]["label"] == "not_humor"


def test_tweet_sarcasm_rebuilds_the_five_ratings_from_the_vote_count(saved_copy):
    parsed = parse("tweet_sarcasm", saved_copy)
    train, test = parsed.splits["train"], parsed.splits["test"]
    assert parsed.stats == {"train_rows_without_text": 1} and len(train) == 20 and len(test) == 26
    with open(saved_copy / "tweet_sarcasm" / "english_task_a.csv", encoding="utf-8", newline="") as fh:
        source = list(csv.DictReader(fh))
    for row, src in zip(test, source):
        votes = int(src["#humans_sarcasm"])
        assert row["text"] == src["text"] and row["votes_sarcastic"] == votes
        assert row["ratings"].count("sarcastic") == votes and len(row["ratings"]) == 5
        assert row["agreement"] == max(votes, 5 - votes) / 5
        assert row["perceived_majority"] == ("sarcastic" if votes >= 3 else "not_sarcastic")
        assert row["label"] == ("sarcastic" if src["sarcasm_ref"] == "1" else "not_sarcastic")
    assert {r["agreement"] for r in test} == {0.6, 0.8, 1.0}
    assert "\r\n" in test[0]["text"]  # multi-line tweets are kept as released


@pytest.mark.parametrize("task,name,content,message", [
    ("sms_spam", "SMSSpamCollection", "Label\tSMS\nham\thello\nmaybe\tnot a label\n", "line 2: expected 'ham<TAB>text'"),
    ("ag_news", "train.csv", '"5","Title","Text"\n', "row 0: expected 3 columns"),
    ("sarcasm_news", "Sarcasm_Headlines_Dataset.csv", "0,fine\n2,bad flag\n", "row 1: expected 2 columns"),
    ("humor", "dev.csv", "text,humor\nok,True\nbad,Maybe\n", "data row 1: expected 2 columns"),
    ("tweet_irony", "train_labels.txt", "1\n0\n", "2 labels for 6 texts"),
])
def test_malformed_source_file_is_an_error_naming_file_and_place(tmp_path, saved_copy, task, name, content, message):
    folder = tmp_path / task
    folder.mkdir()
    for f in SOURCES[task].files:
        (folder / f.name).write_bytes((saved_copy / task / f.name).read_bytes())
    (folder / name).write_text(content, encoding="utf-8")
    with pytest.raises(SourceFormatError) as err:
        parse(task, tmp_path)
    assert name in str(err.value) and message in str(err.value)
