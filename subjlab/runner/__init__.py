"""The study runner: one TOML config in, a whole study (data, generation, training, evaluation,
analysis) and a report out.

- `subjlab.runner.config`   — the typed study config and its loader (`load_config`).
- `subjlab.runner.steps`    — the content-addressed step cache (`Step`, `StepRunner`).
- `subjlab.runner.pipeline` — the study itself (`run_study`).

This subpackage and the CLI are the only places that import all four packages (`generation`,
`training`, `analysis`, `annotation_server`), and they do so lazily, inside the steps that need them.
"""
