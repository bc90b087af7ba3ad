"""The study runner: one TOML config in, a whole study (data, generation, training, evaluation,
analysis) and a report out.

- `subjlab.runner.config`        — the study config: pydantic models of its tables, `load_config`
  (`config_values`: the value types and path resolution they use).
- `subjlab.runner.steps`         — the content-addressed step cache (`Step`, `StepRunner`, code versions).
- `subjlab.runner.task_steps`    — the steps of one task (data, agreement, generate, mix, train,
  diversity, stratified); `study_steps` — the study-wide ones (rankings, assembling the report).
- `subjlab.runner.pipeline`      — the study itself (`run_study`, `preflight`).
- `subjlab.runner.evidence`      — the report's numbers with intervals; `findings` — the verdicts
  on the paper's findings.
- `subjlab.runner.report_model`, `report`, `templates/` — the study report: one typed model,
  rendered by Jinja2 to report.md and report.html.
- `subjlab.runner.run_files`     — run-folder files: folder names, atomic JSON/text writes.
- `subjlab.runner.threads`       — torch threads from the idle cores (`auto_threads`).
- `subjlab.runner.demo`          — where the packaged demo and paper configs are.

This subpackage and the CLI are the only places that import all four packages (`generation`,
`training`, `analysis`, `annotation_server`), and they do so lazily, inside the steps that need them.
"""
