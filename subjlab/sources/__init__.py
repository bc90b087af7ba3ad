"""Full task data from each task's public source: pinned files, their converters and `subjlab data fetch`.

- `registry`: every task's public files (URL, repository, commit, pinned hashes), licence and split rule.
- `parsers`: raw format -> rows of the JSONL layout (`text`, `label`, the task's extra fields).
- `draw`: dedup, train/test split, per-label caps and file order, deterministic from one seed.
- `fetch`: download (or read a saved copy), verify, convert, write `<out>/<task>/` with `provenance.json`.

Layer 1: depends only on the standard library, tqdm and `subjlab.records`.
"""
