"""Where each task's full data comes from: the public files, pinned by commit and content hash.

Every `SourceFile` names the file's public URL, the repository and commit it is pinned to, and the
hashes its content must have: `sha256`, and `git_blob` (the git object id of the file at that
commit, i.e. SHA-1 of ``"blob <size>\\0" + content``). A few files are above the size limit of the
repository snapshots this project was built with, so their sha256 could not be computed here; for
those the git blob id from the commit's tree pins the content instead (said per file in `note`).

The licence statements are quoted from the sources; the full text of `licence_files` (downloaded with
the data) and of licence files inside archives goes into each task's provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

#: The seed of the development subsets in ../shared/datasets (their README); also `fetch`'s default.
DEFAULT_SEED = 20231207
#: Tasks whose source has no train/test split hold out min(HOLDOUT_PER_LABEL, n // 3) per label for test.
HOLDOUT_PER_LABEL = 500


@dataclass(frozen=True)
class SourceFile:
    """One public file: saved as `<task>/<name>` in a source folder, downloaded from `url`."""

    name: str
    url: str
    repo: str = ""
    commit: str = ""
    path: str = ""
    sha256: str = ""
    git_blob: str = ""
    size: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not (self.sha256 or self.git_blob):
            raise ValueError(f"source file {self.name!r}: neither sha256 nor git_blob pinned")


@dataclass(frozen=True)
class TaskSource:
    """A task's public source: its files, licence, split rule and the facts its provenance states."""

    task: str
    title: str
    files: tuple[SourceFile, ...]
    licence: str
    licence_files: tuple[str, ...] = ()
    has_split: bool = True
    dedup: tuple[str, ...] = ()  # which of "train", "test", "pool" drop exact duplicate texts
    conflicts: str = "drop"  # a deduplicated text with two labels: "drop" every row, or keep the "first"
    split_rule: str = ""
    note: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def file(self, name: str) -> SourceFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(f"task {self.task!r} has no source file {name!r}")


def _github(repo: str, commit: str, path: str, *, name: str = "", sha256: str = "", git_blob: str = "",
            size: int | None = None, note: str = "") -> SourceFile:
    url = f"https://raw.githubusercontent.com/{repo}/{commit}/{quote(path)}"
    return SourceFile(name=name or path.rsplit("/", 1)[-1], url=url, repo=repo, commit=commit, path=path,
                      sha256=sha256, git_blob=git_blob, size=size, note=note)


_KEPT_SPLIT = ("source train split -> train.jsonl, source test split -> test.jsonl; train rows whose exact "
               "text also occurs in the test split are dropped")
_HOLDOUT = (f"the source has no train/test split: per label, deterministic shuffle, hold out "
            f"min({HOLDOUT_PER_LABEL}, floor(n/3)) for test, the rest is train")

_AG = ("mhjabreel/CharCnn_Keras", "555590db4219b1243abb1918effd6a7425a2d75f")
_IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_SMS = ("hamzaaacodes/sms-spam-collection", "f3e73e1e74e6330b62d1ee1983bba2a063184c26")
_FPB = ("neoyipeng2018/FinancialPhraseBank-v1.0", "0812b5e791e17aba43d098f4832d9330391a09df")
_GOEMO = ("monologg/GoEmotions-pytorch", "b75f9d3a8b76bc1060687925b04ca98a1b8ea66b")
_FEWREL = ("thunlp/FewRel", "278a2315d2138810a379cd8d5718914dc56e2582")
_TWEETEVAL = ("cardiffnlp/tweeteval", "4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66")
_SARC = ("jbkjr/sarcasm_detection_fastai", "7ac886ee4c111ade289cc8e907dd393434d43ba3")
_COLBERT = ("Moradnejad/ColBERT-Using-BERT-Sentence-Embedding-for-Humor-Detection",
            "1cb05ec1476e0fb21f1a624957dbc49b8388fc23")
_ISARC = ("iabufarha/iSarcasmEval", "dfc708b53bde1bb571abfb5692f63231c2232195")

_TWEETEVAL_LICENCE = ("TweetEval README: 'TweetEval is released without any restrictions but restrictions may "
                      "apply to individual tasks (which are derived from existing datasets) or Twitter (main data "
                      "source). We refer users to the original licenses accompanying each dataset and Twitter "
                      "regulations.'")

#: The official GoEmotions -> Ekman mapping, google-research/google-research @ 7c35f3f0...,
#: goemotions/data/ekman_mapping.json (kept here as data: that repository is too large to pin a
#: download from a snapshot; "neutral" stays "neutral").
EKMAN_MAPPING: dict[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": ("joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride",
            "admiration", "desire", "caring"),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
}


def _tweeteval(task: str, folder: str, pins: dict[str, tuple[str, str, int]], note: str) -> TaskSource:
    files = tuple(_github(*_TWEETEVAL, f"datasets/{folder}/{name}", sha256=sha, git_blob=blob, size=size)
                  for name, (sha, blob, size) in pins.items())
    return TaskSource(
        task=task, title=f"TweetEval {folder} (SemEval-2018)", files=files, licence=_TWEETEVAL_LICENCE,
        split_rule=_KEPT_SPLIT + " (TweetEval's val split is not used)", note=note,
        fields={"text": "tweet as in <split>_text.txt", "label": "mapping.txt name of the label id",
                "label_id": "TweetEval label id", "source_line": "1-based line in the split file"})


SOURCES: dict[str, TaskSource] = {s.task: s for s in (
    TaskSource(
        task="ag_news", title="AG News (Zhang et al., 2015)",
        files=(
            _github(*_AG, "data/ag_news_csv/train.csv",
                    sha256="76a0a2d2f92b286371fe4d4044640910a04a803fdd2538e0f3f29a5c6f6b672e",
                    git_blob="694aa19971315410e000404523796b76349d3c1d", size=29470338,
                    note="the original 120,000-row train.csv (the file torchtext's AG_NEWS downloads, MD5 "
                         "b1a00f826fdfbd249f79597b59e1dc12); git blob from the commit's tree, sha256 as "
                         "published for this URL (the file is above the snapshot size limit here)"),
            _github(*_AG, "data/ag_news_csv/test.csv",
                    sha256="521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699",
                    git_blob="130b40c3329c993468b8ed8a22c331315e478e0a", size=1857427,
                    note="the original 7,600-row test.csv (same blob as Hongcheng-Gao/RobTest-Demo "
                         "data/agnews/test copy.csv used by the development subset)"),
            _github(*_AG, "data/ag_news_csv/readme.txt",
                    sha256="779c2e6bbf93dd810d9c7b318006daef7a4bfc34062002461d251dc10fb9f58c",
                    git_blob="ff8935df4b5e8788e8a2963bb4da6187de08e53e", size=1795),
        ),
        licence="No licence file. The original readme.txt states the AG corpus 'is provided by the academic "
                "comunity for research purposes in data mining ..., and any other non-commercial activity'.",
        licence_files=("readme.txt",), dedup=("train",),
        split_rule=_KEPT_SPLIT + "; exact duplicate train texts dropped (first kept), texts with two labels dropped",
        note="full original train split (the development subset used a 5,000-row sample of it)",
        fields={"text": "title + ' ' + description", "label": "class name (1-4 = World, Sports, Business, Sci/Tech)",
                "title": "title column", "description": "description column",
                "source_row": "0-based row in the split's csv"}),
    TaskSource(
        task="imdb", title="Large Movie Review Dataset v1.0 (Maas et al., 2011)",
        files=(SourceFile(name="aclImdb_v1.tar.gz", url=_IMDB_URL,
                          sha256="c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe", size=84125825,
                          note="the authors' release archive (not a git file: pinned by its published sha256)"),),
        licence="No licence stated; the release README asks users to cite Maas et al. (ACL 2011).",
        split_rule=_KEPT_SPLIT,
        note="the canonical archive (the development subset read a git copy with one file per review)",
        fields={"text": "review text exactly as in the file (contains '<br />' tags)", "label": "neg / pos",
                "rating": "IMDb star rating from the file name", "review_id": "<split>/<label>/<id>_<rating>"}),
    TaskSource(
        task="sms_spam", title="SMS Spam Collection v.1 (Almeida & Gomez Hidalgo, 2011)",
        files=(_github(*_SMS, "SMSSpamCollection",
                       sha256="fae7ea7d915ef73903e5c2f46ffa2f4a39909a574e20fda4f2b81f7cb1e15e1f",
                       git_blob="02baf4248f3157bd82a98bc0c5522b323a2526dd", size=477917),),
        licence="Not stated in the source copy. The corpus readme asks users to cite Almeida et al. (2011); "
                "the UCI ML Repository page of the corpus lists CC BY 4.0.",
        has_split=False, dedup=("pool",), split_rule="exact duplicate messages dropped (first kept); " + _HOLDOUT,
        fields={"text": "message", "label": "ham / spam", "source_line": "line in the source file (header = 0)"}),
    TaskSource(
        task="financial_phrasebank", title="Financial PhraseBank v1.0 (Malo et al., 2014)",
        files=(_github(*_FPB, "FinancialPhraseBank-v1.0.zip",
                       sha256="0e1a06c4900fdae46091d031068601e3773ba067c7cecb5b0da1dcba5ce989a6",
                       git_blob="d8e904b9ece2a0bf5a9dd566856790182e111689", size=681890),),
        licence="Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported (License.txt in the release); "
                "commercial use needs the authors' permission.",
        has_split=False, dedup=("pool",),
        split_rule="all sentences of Sentences_50Agree.txt; exact duplicates dropped (first kept), sentences "
                   "with two labels dropped; " + _HOLDOUT,
        fields={"text": "sentence (decoded from latin-1)", "label": "negative / neutral / positive",
                "agreement": "strictest agreement file holding the sentence: '100' (AllAgree), '75', '66', '50'",
                "source_line": "1-based line in Sentences_50Agree.txt"}),
    TaskSource(
        task="reddit_emotion", title="GoEmotions (Demszky et al., 2020), simplified split",
        files=tuple(_github(*_GOEMO, f"data/original/{n}", sha256=s, git_blob=b, size=z) for n, s, b, z in (
            ("train.tsv", "1c254a142be5c00e80d819b9ae1bbd36d94b2eeb8f4b1271846508d57e57d9c5",
             "aa00d732d3b9e969d9fcbaafc2c5b094555746c0", 3519053),
            ("test.tsv", "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4",
             "7635db4a49befb91e5bc0dbedde095bb2d8593ae", 436706),
            ("labels.txt", "45c3ef86782d2a4d7fedcd6d8c111aa0d0e94720689bd164fac94fefb4495a89",
             "0d79bc030e766bc9dac1f4482bfbd864556c284a", 248))) + (
            _github(*_GOEMO, "LICENSE", sha256="c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
                    git_blob="261eeb9e9f8b2b4b0d119366dda99c6fd7d35c64", size=11357),),
        licence="Apache-2.0 (LICENSE of monologg/GoEmotions-pytorch and of google-research/google-research).",
        licence_files=("LICENSE",),
        split_rule="only comments with exactly one label; " + _KEPT_SPLIT,
        note="copies of google-research goemotions/data/{train,test}.tsv; ekman_label from the official "
             "ekman_mapping.json (google-research/google-research @ 7c35f3f048c1bbf1416bf12491e4a2e528f2f988)",
        fields={"text": "Reddit comment as released", "label": "the comment's single GoEmotions label",
                "ekman_label": "Ekman category of the label (neutral stays neutral)", "id": "Reddit comment id"}),
    TaskSource(
        task="fewrel", title="FewRel 1.0 (Han et al., 2018): country, league, screenwriter, tributary",
        files=(
            _github(*_FEWREL, "data/train_wiki.json", git_blob="4fee283724b455bab1fcbf76bfdef02283bb44f5",
                    note="700 instances for each of 64 relations; above the snapshot size limit here, so "
                         "pinned by its git blob id only"),
            _github(*_FEWREL, "LICENSE", sha256="101669c6396d156750c0169a32e27b3b68eba95802aa9a1aa2aa3db5143bee76",
                    git_blob="6fec9b6238e7b4f2037aefcf4110821a2fd16c70", size=1062),
        ),
        licence="MIT (LICENSE of thunlp/FewRel, Copyright (c) 2018 THUNLP).", licence_files=("LICENSE",),
        has_split=False, split_rule="unique (sentence, head, tail) per relation; " + _HOLDOUT
                                    + "; a sentence under two kept relations is dropped",
        note="the original FewRel release, tokens in their original case (the development subset used a "
             "lower-cased re-sample with 141-383 instances per relation); P403 'mouth of the watercourse' "
             "goes to alt_P403_mouth_of_the_watercourse.{train,test}.jsonl",
        fields={"text": "FewRel tokens joined by single spaces", "label": "relation name",
                "wikidata_pid": "P17 / P118 / P58 / P974", "head": "head entity mention (the tokens it covers)",
                "tail": "tail entity mention (the tokens it covers)",
                "head_token_idx": "0-based token indices of head in text.split(' ')",
                "tail_token_idx": "0-based token indices of tail", "head_qid": "Wikidata id of head",
                "tail_qid": "Wikidata id of tail"}),
    _tweeteval("tweet_irony", "irony", {
        "train_text.txt": ("a888125a44f7dfaa25b026318748d0e62cc9a300d20f66eafd62011a19eaea23",
                           "3a3aa54503bcb789ec3d7079f98d79f393e9701d", 231594),
        "train_labels.txt": ("fc69e6106c0f1f433a91536e08f83c71a391d7b219f7684d42f243a8089af77d",
                             "2ea6371b49134abad08051bbe1b2c7f3af60e7dd", 5724),
        "test_text.txt": ("53103da934a7308eee82f05f2a9781a8ea3e88604fdc1e02d3101108505c64be",
                          "870b1023030bcbb2a6c3a794c7fbe29e890cabad", 68057),
        "test_labels.txt": ("08e2095e1725e74907a380614c220204e356bb46e3e8c93deb74e83e5b15ab38",
                            "c15912c8f1a5103137befdb26668ada8894b60d6", 1568),
        "mapping.txt": ("70e09046e181179b9870a2f59a3263bbb28c787831779e4ce4a18373d054296b",
                        "7a12d87cdac338a6bda1698a28622db01d622b4e", 19),
    }, "TweetEval irony (Van Hee et al., 2018)"),
    _tweeteval("tweet_emotion", "emotion", {
        "train_text.txt": ("2c62f67aeb3eac1aea0e5a9c3d0f4bc337992581f3f858061786a1fb4d79d95e",
                           "bcc4ad10ec0fcb4a03e88be204acc382c9c99573", 306630),
        "train_labels.txt": ("987e767d8679e18abdf7de37a6d2bcd0a40a296ddd704e8d515cf0e3033c8d9c",
                             "b28d556073142a5efb3df5267914d1913605ee87", 6514),
        "test_text.txt": ("7e1070f5d3e3fcece5bc73680bff9981e90d8f7b2f1009bfe7a01d059d1c6091",
                          "15f91cb079fc95b68cab2479e0ef3b3eaea507ca", 132523),
        "test_labels.txt": ("245072348c711961785be6d395997f97cf7fcda3effeae7805664171dc75f913",
                            "bf3984253199cfc3ccb13eccc133ff0557b95290", 2842),
        "mapping.txt": ("656dea85d149716af96206ca19bec0d94e9dc6de3f5079f5c7c2a241ec76cadb",
                        "be141047c7855cffa1f9e7dd7eebf2d50dd4792b", 34),
    }, "TweetEval emotion (Mohammad et al., 2018)"),
    TaskSource(
        task="sarcasm_news", title="News Headlines Dataset for Sarcasm Detection v1 (Misra & Arora)",
        files=(_github(*_SARC, "Sarcasm_Headlines_Dataset.csv",
                       sha256="0e48839b857e8fde283c9f58c09a1e81b80d04a48dc5ef81818f0ba334aef470",
                       git_blob="ddbe3afff25805c82637396c53903f49178dc8ce", size=1740771,
                       note="all 26,709 headlines of Sarcasm_Headlines_Dataset.json v1 as CSV "
                            "(is_sarcastic, headline)"),),
        licence="Not stated (no licence file in the copy nor in rishabhmisra/News-Headlines-Dataset-For-Sarcasm-"
                "Detection, whose README asks users to cite Misra & Arora (2023) and Misra & Grover (2021)).",
        has_split=False, dedup=("pool",), split_rule="exact duplicate headlines dropped (first kept); " + _HOLDOUT,
        fields={"text": "headline (lower-cased as released)", "label": "not_sarcastic / sarcastic",
                "is_sarcastic": "0 / 1 as in the source", "source_row": "0-based row in the csv"}),
    TaskSource(
        task="humor", title="ColBERT 200k short texts for humor detection (Annamoradnejad & Zoghi)",
        files=(
            _github(*_COLBERT, "Data/train.csv", git_blob="f157f9aec753e059eddaca7d245ea451604d5e9c",
                    note="the authors' labelled train split; above the snapshot size limit here, so pinned by "
                         "its git blob id only"),
            _github(*_COLBERT, "Data/dev.csv",
                    sha256="abe1435643d449c5ee6fe5ca3b18e0137bdf923330564deadc1102b4e56a20c0",
                    git_blob="f1f9f5dafbd1cdc88f2dd546cce94e7ef6293567", size=2975650,
                    note="the authors' labelled 40,000-row held-out split (Data/test.csv holds the same texts "
                         "without labels)"),
            _github(*_COLBERT, "LICENSE", sha256="14f44193c737dac543af9ef4add422d3dfc730c1024423bb9ae01979c50daae5",
                    git_blob="71cbd90abaeae02b725004cc61d2f2dff52940c3", size=1071),
        ),
        licence="MIT (repository LICENSE, Copyright (c) 2020 Annamoradnejad; README: 'Code and dataset is "
                "released under MIT liscense').", licence_files=("LICENSE",), dedup=("train", "test"),
        split_rule="train.csv -> train.jsonl, dev.csv -> test.jsonl; exact duplicate texts dropped (first kept), "
                   "texts with two labels dropped, train texts that occur in dev.csv dropped",
        note="the source's own split (the development subset had only dev.csv and split it itself)",
        fields={"text": "short text", "label": "not_humor / humor", "humor": "boolean as in the source",
                "source_row": "0-based data row in the split's csv"}),
    TaskSource(
        task="tweet_sarcasm", title="iSarcasmEval (SemEval-2022 Task 6A, English) with third-party labels",
        files=(
            _github(*_ISARC, "train/train.En.csv",
                    sha256="fde737b69caffbcf81ebe79858ad16ac21881573c308343cd5219c4f7a800ae7",
                    git_blob="c749968008715be553dd9a5fef31b97e2a1268b9", size=491395),
            _github(*_ISARC, "third-party annotations/english_task_a.csv",
                    sha256="f8cf9b75c2968aee5578e22968928fe18799cc17644d0c416b3ba29ea574ec17",
                    git_blob="f216a859f0dac679b1317cb9bdc1af7de9f1266f", size=138141),
            _github(*_ISARC, "LICENSE", sha256="f956625f01a15c08af3be7d32480d39d8302fc36f52075c484a004e8e849835f",
                    git_blob="3145e3763a5124cb3c50be558dbb2dabdf478c41", size=1074),
        ),
        licence="MIT (LICENSE, Copyright (c) 2022 Ibrahim Abu Farha). The texts are tweets, so Twitter's terms "
                "apply to them as well. Cite the SemEval-2022 Task 6 overview paper (data) and Abu Farha et al., "
                "Findings of EMNLP 2022 (third-party labels).", licence_files=("LICENSE",), dedup=("train", "test"),
        conflicts="first",
        split_rule="train.En.csv -> train.jsonl (labels from each tweet's author), english_task_a.csv -> test.jsonl "
                   "(author's label plus five third-party votes); repeated tweets dropped (first kept, whatever its "
                   "label), train tweets that occur in the test file dropped",
        fields={"text": "the tweet, unchanged", "label": "sarcastic / not_sarcastic from the tweet's author",
                "ratings": "test: the five annotators' labels rebuilt from the vote count (order carries no meaning)",
                "votes_sarcastic": "test: how many of the five judged it sarcastic",
                "agreement": "test: share of the five who chose the majority label",
                "perceived_majority": "test: the annotators' majority label",
                "source_row": "0-based row in the split's csv"}),
)}

#: The paper's ten tasks (Li et al., EMNLP 2023), in its order; `tweet_sarcasm` is fetchable too.
PAPER_TASKS: tuple[str, ...] = ("ag_news", "imdb", "sms_spam", "financial_phrasebank", "reddit_emotion", "fewrel",
                                "tweet_irony", "tweet_emotion", "sarcasm_news", "humor")
