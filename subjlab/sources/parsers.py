"""Readers of each task's raw public files: raw format -> rows of the subjlab JSONL layout.

A parser takes the task's source files (name -> local path, names as in `registry.SOURCES`) and
returns a `Parsed`: either the source's own `splits` (train / test row lists) or one `pool` when the
source has no split, plus the label set and raw counts. Rows are plain dicts whose first keys are
`text` and `label`, then the task's extra fields; texts are kept exactly as the source has them.
Drawing (dedup, split, caps, order) is `subjlab.sources.draw`'s job, not the parsers'.

A malformed file raises `SourceFormatError` naming the file, the line/row and what was expected.
"""

from __future__ import annotations

import csv
import json
import re
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from subjlab.sources.registry import EKMAN_MAPPING

Row = dict[str, Any]
Files = Mapping[str, Path]


class SourceFormatError(ValueError):
    """A source file is not in the format its parser expects; the message says where and why."""

    def __init__(self, path: str | Path, where: str | None, message: str):
        place = f"{path}: {where}" if where else str(path)
        super().__init__(f"{place}: {message}")


@dataclass
class Parsed:
    """What a parser read: `splits` (source has train/test) or `pool` (it has none), and `alt` pools."""

    labels: tuple[str, ...]
    splits: dict[str, list[Row]] | None = None
    pool: list[Row] | None = None
    alt: dict[str, list[Row]] = field(default_factory=dict)  # file stem -> pool split like the main pool
    stats: dict[str, Any] = field(default_factory=dict)
    licence_texts: dict[str, str] = field(default_factory=dict)  # licence files found inside archives


def label_counts(rows: list[Row]) -> dict[str, int]:
    return dict(sorted(Counter(r["label"] for r in rows).items()))


def _csv_rows(path: Path) -> Iterator[list[str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        yield from csv.reader(fh)


def _text_lines(data: str) -> list[str]:
    # split on "\n" only: str.splitlines would also split on \x85, \x0c and other characters in texts
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --- AG News ------------------------------------------------------------------------------------
AG_LABELS = ("World", "Sports", "Business", "Sci/Tech")


def _ag_split(path: Path) -> list[Row]:
    rows = []
    for i, rec in enumerate(_csv_rows(path)):
        if len(rec) != 3 or rec[0] not in ("1", "2", "3", "4"):
            raise SourceFormatError(path, f"row {i}", "expected 3 columns: class index 1-4, title, description")
        title, description = rec[1], rec[2]
        rows.append({"text": f"{title} {description}", "label": AG_LABELS[int(rec[0]) - 1], "title": title,
                     "description": description, "source_row": i})
    return rows


def parse_ag_news(files: Files) -> Parsed:
    return Parsed(AG_LABELS, splits={"train": _ag_split(files["train.csv"]), "test": _ag_split(files["test.csv"])})


# --- IMDB ---------------------------------------------------------------------------------------
_IMDB_MEMBER = re.compile(r"^aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")


def parse_imdb(files: Files) -> Parsed:
    path = files["aclImdb_v1.tar.gz"]
    found: list[tuple[str, str, int, int, str]] = []
    readme = ""
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                m = _IMDB_MEMBER.match(member.name)
                if not member.isfile() or not (m or member.name == "aclImdb/README"):
                    continue
                fh = tar.extractfile(member)
                assert fh is not None  # a regular file always has content
                text = fh.read().decode("utf-8")
                if m:
                    found.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), text))
                else:
                    readme = text
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise SourceFormatError(path, None, f"not a readable .tar.gz archive ({exc})") from exc
    if not found:
        raise SourceFormatError(path, None, "no aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt members")
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    splits: dict[str, list[Row]] = {"train": [], "test": []}
    for split, label, review, rating, text in found:
        splits[split].append({"text": text, "label": label, "rating": rating,
                              "review_id": f"{split}/{label}/{review}_{rating}"})
    return Parsed(("neg", "pos"), splits=splits, licence_texts={"aclImdb/README": readme} if readme else {})


# --- SMS spam -----------------------------------------------------------------------------------
def parse_sms_spam(files: Files) -> Parsed:
    path = files["SMSSpamCollection"]
    rows = []
    for i, line in enumerate(_text_lines(path.read_text(encoding="utf-8"))):
        if i == 0 and line.startswith("Label\t"):
            continue  # a header line added by the GitHub copy (the UCI file has none)
        label, sep, text = line.partition("\t")
        if not sep or label not in ("ham", "spam"):
            raise SourceFormatError(path, f"line {i}", "expected 'ham<TAB>text' or 'spam<TAB>text'")
        rows.append({"text": text, "label": label, "source_line": i})
    return Parsed(("ham", "spam"), pool=rows, stats={"raw_counts": label_counts(rows)})


# --- Financial PhraseBank -----------------------------------------------------------------------
_FPB_LEVELS = (("100", "Sentences_AllAgree.txt"), ("75", "Sentences_75Agree.txt"), ("66", "Sentences_66Agree.txt"),
               ("50", "Sentences_50Agree.txt"))


def _fpb_lines(zf: zipfile.ZipFile, path: Path, member: str) -> list[tuple[str, str]]:
    try:
        data = zf.read(f"FinancialPhraseBank-v1.0/{member}").decode("latin-1")
    except KeyError:
        raise SourceFormatError(path, None, f"archive lacks FinancialPhraseBank-v1.0/{member}") from None
    out = []
    for i, line in enumerate(_text_lines(data), start=1):
        sentence, sep, label = line.rstrip("\r").rpartition("@")
        if not sep or label not in ("negative", "neutral", "positive"):
            raise SourceFormatError(path, f"{member} line {i}", "expected 'sentence@negative|neutral|positive'")
        out.append((sentence, label))
    return out


def parse_financial_phrasebank(files: Files) -> Parsed:
    path = files["FinancialPhraseBank-v1.0.zip"]
    try:
        with zipfile.ZipFile(path) as zf:
            levels = {lvl: _fpb_lines(zf, path, member) for lvl, member in _FPB_LEVELS}
            licence = zf.read("FinancialPhraseBank-v1.0/License.txt").decode("latin-1")
    except zipfile.BadZipFile as exc:
        raise SourceFormatError(path, None, f"not a zip archive ({exc})") from exc
    members = {lvl: set(lines) for lvl, lines in levels.items()}
    rows = []
    for i, (sentence, label) in enumerate(levels["50"], start=1):
        agreement = next(lvl for lvl, _ in _FPB_LEVELS if (sentence, label) in members[lvl])
        rows.append({"text": sentence, "label": label, "agreement": agreement, "source_line": i})
    stats = {"raw_line_counts": {lvl: len(levels[lvl]) for lvl in ("50", "66", "75", "100")},
             "nesting_violations": {f"{a}_subset_of_{b}": len(members[a] - members[b])
                                    for a, b in (("66", "50"), ("75", "66"), ("100", "75"))}}
    return Parsed(("negative", "neutral", "positive"), pool=rows, stats=stats,
                  licence_texts={"FinancialPhraseBank-v1.0/License.txt": licence})


# --- GoEmotions ---------------------------------------------------------------------------------
def parse_reddit_emotion(files: Files) -> Parsed:
    names = _text_lines(files["labels.txt"].read_text(encoding="utf-8"))
    ekman = {emotion: group for group, emotions in EKMAN_MAPPING.items() for emotion in emotions}
    ekman["neutral"] = "neutral"
    splits: dict[str, list[Row]] = {}
    multi = {}
    for split in ("train", "test"):
        path = files[f"{split}.tsv"]
        rows, multi[split] = [], 0
        for i, line in enumerate(_text_lines(path.read_text(encoding="utf-8")), start=1):
            parts = line.rsplit("\t", 2)
            if len(parts) != 3 or not all(x.isdigit() for x in parts[1].split(",")):
                raise SourceFormatError(path, f"line {i}", "expected 'text<TAB>label ids<TAB>comment id'")
            ids = parts[1].split(",")
            if len(ids) != 1:
                multi[split] += 1
                continue
            label = names[int(ids[0])]
            rows.append({"text": parts[0], "label": label, "ekman_label": ekman[label], "id": parts[2]})
        splits[split] = rows
    return Parsed(tuple(names), splits=splits, stats={"multi_label_rows_excluded": multi})


# --- FewRel -------------------------------------------------------------------------------------
FEWREL_RELATIONS = {"P17": "country", "P118": "league", "P58": "screenwriter", "P974": "tributary"}
FEWREL_ALT = {"P403": "mouth of the watercourse"}  # the inverse of P974, kept in separate files


def _fewrel_rows(path: Path, data: dict, pid: str, name: str) -> list[Row]:
    if pid not in data:
        raise SourceFormatError(path, None, f"relation {pid} ({name}) is missing")
    rows, seen = [], set()
    for i, inst in enumerate(data[pid]):
        try:
            tokens, head, tail = inst["tokens"], inst["h"], inst["t"]
            head_idx, tail_idx = list(head[2][0]), list(tail[2][0])
            # mentions as the tokens they cover (FewRel's own mention strings are lower-cased and
            # sometimes spaced differently from the tokens, e.g. "ak-sar-ben" for "ak - sar - ben")
            row = {"text": " ".join(tokens), "label": name, "wikidata_pid": pid,
                   "head": " ".join(tokens[i] for i in head_idx), "head_token_idx": head_idx,
                   "tail": " ".join(tokens[i] for i in tail_idx), "tail_token_idx": tail_idx,
                   "head_qid": head[1], "tail_qid": tail[1]}
        except (KeyError, IndexError, TypeError) as exc:
            raise SourceFormatError(path, f"{pid}[{i}]", f"expected tokens, h and t ({exc!r})") from None
        key = (row["text"], row["head"], row["tail"])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def parse_fewrel(files: Files) -> Parsed:
    path = files["train_wiki.json"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceFormatError(path, f"line {exc.lineno}", f"not JSON ({exc.msg})") from None
    pool = [r for pid, name in FEWREL_RELATIONS.items() for r in _fewrel_rows(path, data, pid, name)]
    alt = {f"alt_{pid}_{name.replace(' ', '_')}": _fewrel_rows(path, data, pid, name)
           for pid, name in FEWREL_ALT.items()}
    return Parsed(tuple(FEWREL_RELATIONS.values()), pool=pool, alt=alt,
                  stats={"unique_instances_per_relation": label_counts(pool)})


# --- TweetEval ----------------------------------------------------------------------------------
def parse_tweeteval(files: Files) -> Parsed:
    mapping_path = files["mapping.txt"]
    mapping = {}
    for i, line in enumerate(_text_lines(mapping_path.read_text(encoding="utf-8")), start=1):
        key, sep, name = line.partition("\t")
        if not sep:
            raise SourceFormatError(mapping_path, f"line {i}", "expected 'id<TAB>name'")
        mapping[key.strip()] = name.strip()
    splits: dict[str, list[Row]] = {}
    for split in ("train", "test"):
        texts = _text_lines(files[f"{split}_text.txt"].read_text(encoding="utf-8"))
        labels = _text_lines(files[f"{split}_labels.txt"].read_text(encoding="utf-8"))
        if len(texts) != len(labels):
            raise SourceFormatError(files[f"{split}_labels.txt"], None,
                                    f"{len(labels)} labels for {len(texts)} texts in {split}_text.txt")
        rows = []
        for i, (text, raw) in enumerate(zip(texts, labels), start=1):
            if raw.strip() not in mapping:
                raise SourceFormatError(files[f"{split}_labels.txt"], f"line {i}",
                                        f"label id {raw!r} not in mapping.txt")
            rows.append({"text": text, "label": mapping[raw.strip()], "label_id": int(raw), "source_line": i})
        splits[split] = rows
    return Parsed(tuple(mapping.values()), splits=splits)


# --- Sarcasm headlines --------------------------------------------------------------------------
def parse_sarcasm_news(files: Files) -> Parsed:
    path = files["Sarcasm_Headlines_Dataset.csv"]
    rows = []
    for i, rec in enumerate(_csv_rows(path)):
        if len(rec) != 2 or rec[0] not in ("0", "1"):
            raise SourceFormatError(path, f"row {i}", "expected 2 columns: is_sarcastic 0/1, headline")
        flag = int(rec[0])
        rows.append({"text": rec[1], "label": ("not_sarcastic", "sarcastic")[flag], "is_sarcastic": flag,
                     "source_row": i})
    return Parsed(("not_sarcastic", "sarcastic"), pool=rows, stats={"raw_counts": label_counts(rows)})


# --- Humor --------------------------------------------------------------------------------------
def _humor_split(path: Path) -> list[Row]:
    reader = _csv_rows(path)
    if next(reader, None) != ["text", "humor"]:
        raise SourceFormatError(path, "row 0", "expected the header 'text,humor'")
    rows = []
    for i, rec in enumerate(reader):
        if len(rec) != 2 or rec[1] not in ("True", "False"):
            raise SourceFormatError(path, f"data row {i}", "expected 2 columns: text, True/False")
        flag = rec[1] == "True"
        rows.append({"text": rec[0], "label": "humor" if flag else "not_humor", "humor": flag, "source_row": i})
    return rows


def parse_humor(files: Files) -> Parsed:
    return Parsed(("not_humor", "humor"), splits={"train": _humor_split(files["train.csv"]),
                                                  "test": _humor_split(files["dev.csv"])})


# --- iSarcasmEval -------------------------------------------------------------------------------
def _flag(path: Path, where: str, value: str) -> int:
    if value not in ("0", "1"):
        raise SourceFormatError(path, where, f"expected 0 or 1, got {value!r}")
    return int(value)


def parse_tweet_sarcasm(files: Files) -> Parsed:
    names = ("not_sarcastic", "sarcastic")
    train_path, test_path = files["train.En.csv"], files["english_task_a.csv"]
    reader = _csv_rows(train_path)
    header = next(reader, [])
    if header[1:3] != ["tweet", "sarcastic"]:
        raise SourceFormatError(train_path, "row 0", "expected columns ',tweet,sarcastic,...'")
    train, empty = [], 0
    for i, rec in enumerate(reader):
        if not rec[1].strip():
            empty += 1
            continue
        train.append({"text": rec[1], "label": names[_flag(train_path, f"data row {i}", rec[2])], "source_row": i})
    reader = _csv_rows(test_path)
    if next(reader, None) != ["text", "sarcasm_ref", "human_aggregated", "#humans_sarcasm"]:
        raise SourceFormatError(test_path, "row 0", "expected 'text,sarcasm_ref,human_aggregated,#humans_sarcasm'")
    test = []
    for i, rec in enumerate(reader):
        votes = int(rec[3]) if rec[3].isdigit() else -1
        if not 0 <= votes <= 5:
            raise SourceFormatError(test_path, f"data row {i}", f"#humans_sarcasm must be 0-5, got {rec[3]!r}")
        majority = names[votes >= 3]
        test.append({"text": rec[0], "label": names[_flag(test_path, f"data row {i}", rec[1])],
                     "ratings": [names[1]] * votes + [names[0]] * (5 - votes), "votes_sarcastic": votes,
                     "agreement": max(votes, 5 - votes) / 5, "perceived_majority": majority, "source_row": i})
    return Parsed(names, splits={"train": train, "test": test}, stats={"train_rows_without_text": empty})


PARSERS: dict[str, Callable[[Files], Parsed]] = {
    "ag_news": parse_ag_news, "imdb": parse_imdb, "sms_spam": parse_sms_spam,
    "financial_phrasebank": parse_financial_phrasebank, "reddit_emotion": parse_reddit_emotion,
    "fewrel": parse_fewrel, "tweet_irony": parse_tweeteval, "tweet_emotion": parse_tweeteval,
    "sarcasm_news": parse_sarcasm_news, "humor": parse_humor, "tweet_sarcasm": parse_tweet_sarcasm,
}

