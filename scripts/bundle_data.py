#!/usr/bin/env python3
"""Build the data slices bundled inside the package (subjlab/datasets/) from the development subsets.

    python scripts/bundle_data.py --source ../shared/datasets          # rewrite subjlab/datasets/
    python scripts/bundle_data.py --source ../shared/datasets --check  # rebuild in memory, compare

A developer tool, not part of the product: the product reads what this wrote. Only tasks whose
licences allow redistribution are bundled (see `BUNDLED`); each keeps its licence text, an attribution
notice, its original source (repository and commit, from the development subsets' manifest) and how the
slice was drawn. The draw is deterministic: per task, split and label, `random.Random(f"{SEED}:{task}:
{split}:{label}")` picks which rows to keep, and the kept rows stay in the order of the source file, so
rerunning gives byte-identical files (`--check` proves it). Rows keep every field of the development
subset and get an explicit `id` (`<task>:<split>:<line>`, the id the same row has when the development
subset is loaded), so agreement and prediction files made on the bundled slices name the same rows there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

SEED = 20231207
OUT = Path(__file__).resolve().parent.parent / "subjlab" / "datasets"

MIT = """MIT License

Copyright (c) {holder}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

CC = """This data is licensed under the {name} licence ({spdx}).
The full legal code: {url}

{terms}
"""


@dataclass(frozen=True)
class Bundle:
    """How one task is bundled: caps per label, the field the caps count by, licence and attribution."""

    task: str
    train_cap: int
    test_cap: int
    licence_id: str
    licence_name: str
    licence_url: str
    licence_text: str
    attribution: str
    label_field: str = "label"
    skip_labels: tuple[str, ...] = ()


def _apache() -> str:
    """The Apache License 2.0 text, as shipped by an installed Apache-licensed package (requests)."""
    import importlib.metadata as md

    for f in md.distribution("requests").files or []:
        if f.name.startswith("LICENSE"):
            text = Path(f.locate()).read_text(encoding="utf-8")
            if "Apache License" in text and "Version 2.0" in text:
                return text.strip("\n") + "\n"
    raise SystemExit("could not find the Apache-2.0 licence text (install requests)")


BUNDLED: tuple[Bundle, ...] = (
    Bundle(
        task="sms_spam", train_cap=200, test_cap=200,
        licence_id="CC-BY-4.0", licence_name="Creative Commons Attribution 4.0 International",
        licence_url="https://creativecommons.org/licenses/by/4.0/legalcode",
        licence_text=CC.format(
            name="Creative Commons Attribution 4.0 International", spdx="CC-BY-4.0",
            url="https://creativecommons.org/licenses/by/4.0/legalcode",
            terms="The licence is the one the UCI Machine Learning Repository lists for the SMS Spam Collection "
                  "(https://archive.ics.uci.edu/dataset/228/sms+spam+collection). Changes: a subset of rows, "
                  "converted to JSON Lines; texts unchanged."),
        attribution="SMS Spam Collection v.1 by Tiago A. Almeida and José María Gómez Hidalgo. Cite: Almeida, "
                    "T.A., Gómez Hidalgo, J.M., Yamakami, A. Contributions to the Study of SMS Spam Filtering: "
                    "New Collection and Results. Proceedings of the 2011 ACM Symposium on Document Engineering "
                    "(DocEng'11), 2011.",
    ),
    Bundle(
        task="financial_phrasebank", train_cap=200, test_cap=200,
        licence_id="CC-BY-NC-SA-3.0",
        licence_name="Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported",
        licence_url="https://creativecommons.org/licenses/by-nc-sa/3.0/legalcode",
        licence_text=CC.format(
            name="Creative Commons Attribution-NonCommercial-ShareAlike 3.0 Unported", spdx="CC-BY-NC-SA-3.0",
            url="https://creativecommons.org/licenses/by-nc-sa/3.0/legalcode",
            terms="As stated in License.txt of the FinancialPhraseBank-v1.0 release. NonCommercial: no use "
                  "primarily intended for commercial advantage (the authors ask to be contacted for commercial "
                  "use). ShareAlike: this slice and anything adapted from it are distributed under the same "
                  "licence. Changes: a subset of sentences, decoded from latin-1, converted to JSON Lines with "
                  "the strictest agreement level of each sentence; sentences unchanged."),
        attribution="Financial PhraseBank v1.0 by Pekka Malo, Ankur Sinha, Pyry Takala, Pekka Korhonen and "
                    "Jyrki Wallenius (Aalto University School of Business). Cite: Malo, P., Sinha, A., Korhonen, "
                    "P., Wallenius, J., Takala, P. Good debt or bad debt: Detecting semantic orientations in "
                    "economic texts. Journal of the Association for Information Science and Technology 65(4), 2014.",
    ),
    Bundle(
        task="humor", train_cap=200, test_cap=200,
        licence_id="MIT", licence_name="MIT License",
        licence_url="https://github.com/Moradnejad/ColBERT-Using-BERT-Sentence-Embedding-for-Humor-Detection/blob/master/LICENSE",
        licence_text=MIT.format(holder="2020 Annamoradnejad"),
        attribution="ColBERT humor dataset (200k short texts) by Issa Annamoradnejad and Gohar Zoghi. Cite: "
                    "Annamoradnejad, I., Zoghi, G. ColBERT: Using BERT Sentence Embedding in Parallel Neural "
                    "Networks for Computational Humor. arXiv:2004.12765, 2020.",
    ),
    Bundle(
        task="tweet_sarcasm", train_cap=200, test_cap=200,
        licence_id="MIT", licence_name="MIT License",
        licence_url="https://github.com/iabufarha/iSarcasmEval/blob/main/LICENSE",
        licence_text=MIT.format(holder="2022 Ibrahim Abu Farha"),
        attribution="iSarcasmEval (SemEval-2022 Task 6) by Ibrahim Abu Farha, Silviu Vlad Oprea, Steven Wilson "
                    "and Walid Magdy; third-party labels from Abu Farha et al. The texts are tweets: Twitter's "
                    "terms apply to them too. Cite: Abu Farha, I., Oprea, S.V., Wilson, S., Magdy, W. "
                    "SemEval-2022 Task 6: iSarcasmEval, Intended Sarcasm Detection in English and Arabic. "
                    "SemEval 2022; and Abu Farha, I., Wilson, S., Oprea, S.V., Magdy, W. Sarcasm Detection is Way "
                    "Too Easy! An Empirical Comparison of Human and Machine Sarcasm Detection. Findings of EMNLP 2022.",
    ),
    Bundle(
        task="fewrel", train_cap=100, test_cap=50,
        licence_id="MIT", licence_name="MIT License",
        licence_url="https://github.com/thunlp/FewRel/blob/master/LICENSE",
        licence_text=MIT.format(holder="2018 THUNLP"),
        attribution="FewRel 1.0 by Xu Han, Hao Zhu, Pengfei Yu, Ziyun Wang, Yuan Yao, Zhiyuan Liu and Maosong "
                    "Sun (THUNLP), as re-sampled by Qin and Joty (qcwthu/Continual_Fewshot_Relation_Learning, "
                    "MIT). Cite: Han, X. et al. FewRel: A Large-Scale Supervised Few-Shot Relation Classification "
                    "Dataset with State-of-the-Art Evaluation. EMNLP 2018.",
    ),
    Bundle(
        task="reddit_emotion", train_cap=50, test_cap=30, label_field="ekman_label", skip_labels=("neutral",),
        licence_id="Apache-2.0", licence_name="Apache License 2.0",
        licence_url="https://www.apache.org/licenses/LICENSE-2.0",
        licence_text="",  # filled in from an installed copy of the licence text (see _apache)
        attribution="GoEmotions by Dorottya Demszky, Dana Movshovitz-Attias, Jeongwoo Ko, Alan Cowen, Gaurav "
                    "Nemade and Sujith Ravi (Google Research), Apache-2.0; Ekman mapping from "
                    "google-research/google-research. Comments from Reddit. Cite: Demszky, D. et al. GoEmotions: "
                    "A Dataset of Fine-Grained Emotions. ACL 2020. Changes: a subset of rows, converted to JSON "
                    "Lines with the Ekman label of each comment.",
    ),
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _draw(task: str, split: str, rows: list[dict], bundle: Bundle, cap: int) -> list[dict]:
    """Keep up to `cap` rows per label (seeded per task/split/label), in source order, with explicit ids."""
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        label = str(row.get(bundle.label_field))
        if label in bundle.skip_labels:
            continue
        by_label.setdefault(label, []).append(i)
    keep: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label]
        rng = random.Random(f"{SEED}:{task}:{split}:{label}")
        keep.update(idx if len(idx) <= cap else rng.sample(idx, cap))
    out = []
    for i in sorted(keep):
        row = dict(rows[i])
        row.setdefault("id", f"{task}:{split}:{i + 1}")
        out.append(row)
    return out


def build(source: Path) -> dict[str, bytes]:
    """Return {relative path: bytes} of everything under subjlab/datasets/."""
    shared = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    entries = {t["task"]: t for t in shared["tasks"]}
    files: dict[str, bytes] = {}
    tasks = []
    for bundle in BUNDLED:
        entry = entries[bundle.task]
        licence_text = bundle.licence_text or _apache()
        record = {
            "task": bundle.task,
            "licence": {"id": bundle.licence_id, "name": bundle.licence_name, "url": bundle.licence_url,
                        "as_stated_in_source": entry["licence"]},
            "attribution": bundle.attribution,
            "sources": entry["sources"],
            "fields": entry["fields"],
            "drawn_from": {"dataset": "the development subsets (shared/datasets), built from the sources above: "
                                      + entry["subset"], "files": {}},
            "draw": (f"per split and per value of `{bundle.label_field}`"
                     + (f" (rows with {list(bundle.skip_labels)} left out)" if bundle.skip_labels else "")
                     + f": up to {bundle.train_cap} train and {bundle.test_cap} test rows, chosen by "
                     f"random.Random('{SEED}:{bundle.task}:<split>:<label>').sample over the rows of that "
                     "label, kept in source order; each row gets id '<task>:<split>:<line>' (its line in the "
                     "development file) unless it has one"),
            "seed": SEED,
            "caps": {"train_per_label": bundle.train_cap, "test_per_label": bundle.test_cap},
            "counts": {},
            "files": {},
        }
        for split, cap in (("train", bundle.train_cap), ("test", bundle.test_cap)):
            raw = (source / bundle.task / f"{split}.jsonl").read_bytes()
            record["drawn_from"]["files"][f"{split}.jsonl"] = {"sha256": _sha256(raw)}
            rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
            kept = _draw(bundle.task, split, rows, bundle, cap)
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept).encode("utf-8")
            files[f"{bundle.task}/{split}.jsonl"] = data
            per_label: dict[str, int] = {}
            for r in kept:
                per_label[str(r[bundle.label_field])] = per_label.get(str(r[bundle.label_field]), 0) + 1
            record["counts"][split] = {"total": len(kept), "per_label": dict(sorted(per_label.items()))}
            record["files"][f"{split}.jsonl"] = {"rows": len(kept), "bytes": len(data), "sha256": _sha256(data)}
        files[f"{bundle.task}/LICENSE"] = licence_text.encode("utf-8")
        files[f"{bundle.task}/NOTICE.md"] = _notice(record).encode("utf-8")
        tasks.append(record)
    manifest = {
        "description": "Small slices of the demo's tasks, bundled so that a clone of subjlab runs its demo and "
                       "its tests with nothing beside it. Only tasks whose licences allow redistribution; each "
                       "task folder holds its LICENSE and a NOTICE.md with attribution and provenance.",
        "builder": "scripts/bundle_data.py",
        "seed": SEED,
        "tasks": tasks,
    }
    files["manifest.json"] = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    return files


def _notice(record: dict) -> str:
    src = "\n".join(f"- `{s['repo']}` @ `{s['commit']}`: {', '.join('`' + p + '`' for p in s['paths'])} "
                    f"(used for {s['used_for']})" for s in record["sources"])
    counts = "\n".join(f"- {split}: {c['total']} rows ({', '.join(f'{k} {v}' for k, v in c['per_label'].items())})"
                       for split, c in record["counts"].items())
    return (f"# {record['task']} (bundled slice)\n\n"
            f"**Licence:** {record['licence']['name']} ({record['licence']['id']}), see `LICENSE` and "
            f"{record['licence']['url']}. As the source states it: {record['licence']['as_stated_in_source']}\n\n"
            f"**Attribution:** {record['attribution']}\n\n"
            f"**Original source:**\n{src}\n\n"
            f"**How this slice was drawn:** {record['draw']}. Seed {record['seed']}; the development files it "
            f"was drawn from are named by sha256 in `../manifest.json`.\n\n**Rows:**\n{counts}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, type=Path, help="the development subsets (e.g. ../shared/datasets)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    ap.add_argument("--check", action="store_true", help="compare a rebuild with --out instead of writing")
    args = ap.parse_args(argv)
    files = build(args.source)
    if args.check:
        bad = [p for p, data in files.items() if not (args.out / p).is_file() or (args.out / p).read_bytes() != data]
        for p in bad:
            print(f"differs: {args.out / p}", file=sys.stderr)
        print(f"{len(files) - len(bad)} of {len(files)} files identical")
        return 1 if bad else 0
    for p, data in files.items():
        path = args.out / p
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files, {total / 1e6:.2f} MB, to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
