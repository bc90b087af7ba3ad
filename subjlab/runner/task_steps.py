"""The per-task steps of a study: each function returns a `Step` (what the step is keyed on) and,
where it runs code, the function that does the work in the step's folder (`subjlab.runner.evidence`
turns finished steps into the report's rows).

Steps (folders under `runs/<study>/<task>/`): real/data, real/agreement, <mode>/generate,
small_real_few_shot/data, <condition>/train-<backbone>-s<seed>, <condition>/diversity,
<condition>/stratified-<backbone>. The other packages are imported inside the step functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from subjlab.records import Example, read_examples, write_records
from subjlab.runner.config import MINILM_ALIAS, StudyConfig
from subjlab.runner.run_files import slug, write_json
from subjlab.runner.steps import Step, StepResult, code_versions, embedder_id
from subjlab.tasks import TaskSpec

#: Bumped when a step's logic changes in a way that changes its output (part of its cache key).
STEP_VERSIONS = {"data": "1", "agreement": "2", "generate": "1", "mix": "1", "train": "1", "diversity": "2",
                 "stratified": "2", "ranking": "1"}
SYNTHETIC = ("zero_shot", "few_shot")
#: The per-text values a diversity step writes beside diversity.json (the items its intervals resample).
DIVERSITY_ITEMS = "diversity_items.json"


def data_step(config: StudyConfig, task: TaskSpec, base: Path) -> Step:
    """Return the step that draws the real train/test slices and the small real set of `task`."""
    from subjlab.data import split_path

    d = config.data
    return Step(
        name=f"{task.name}/real/data",
        directory=base / "real" / "data",
        params={"step": STEP_VERSIONS["data"],
                "task": {k: v for k, v in task.to_dict().items() if k in ("labels", "data_name", "label_field", "label_map")},
                "train_per_label": d.train_per_label,
                "test_per_label": d.test_per_label, "small_real_per_label": d.small_real_per_label,
                "seed": config.seed},
        inputs={"train": split_path(task, "train", config.data_dir), "test": split_path(task, "test", config.data_dir)},
    )


def make_real_data(config: StudyConfig, task: TaskSpec, work: Path) -> dict[str, Any]:
    """Write train.jsonl, test.jsonl and small.jsonl (seeded per-label samples) into `work`; return their sizes.

    Raises ValueError when a slice lacks a label (the data folder has too few examples)."""
    from subjlab.data import load_split, resolve_data_dir, sample_per_label

    d = config.data
    train = load_split(task, "train", config.data_dir, limit_per_label=d.train_per_label, seed=config.seed)
    test = load_split(task, "test", config.data_dir, limit_per_label=d.test_per_label, seed=config.seed)
    small = sample_per_label(train, d.small_real_per_label, seed=config.seed + 1)
    for name, rows in (("train", train), ("test", test), ("small", small)):
        missing = [lab for lab in task.labels if not any(ex.label == lab for ex in rows)]
        if missing:
            raise ValueError(f"task {task.name}: the real {name} slice has no examples of {missing} "
                             f"(data in {resolve_data_dir(config.data_dir)})")
        write_records(work / f"{name}.jsonl", rows)
    return {"train_size": len(train), "test_size": len(test), "small_size": len(small),
            "train_per_label": _per_label(train, task), "test_per_label": _per_label(test, task)}


def agreement_kind(config: StudyConfig, task: TaskSpec) -> tuple[str, Path | None] | None:
    """Return ("file", path) / ("labels", path) from the config, else ("data", None) when the task's
    test split carries its own human annotations (per-item ratings or documented agreement levels,
    `analysis.data_agreement`), else None (no agreement: no γ curves)."""
    if task.name in config.evaluation.agreement:
        return ("file", config.evaluation.agreement[task.name])
    if task.name in config.evaluation.labels:
        return ("labels", config.evaluation.labels[task.name])
    from analysis.data_agreement import data_agreement_kind
    from subjlab.data import load_split

    if data_agreement_kind(load_split(task, "test", config.data_dir), task) is not None:
        return ("data", None)
    return None


def agreement_step(config: StudyConfig, task: TaskSpec, base: Path, real: StepResult, kind) -> Step:
    """Return the step that writes the test slice's per-instance agreement (agreement.jsonl)."""
    inputs = {"test": real.path("test.jsonl")}
    if kind[1] is not None:
        inputs["source"] = kind[1]
    return Step(
        name=f"{task.name}/real/agreement",
        directory=base / "real" / "agreement",
        params={"step": STEP_VERSIONS["agreement"], "kind": kind[0], "labels": list(task.labels)},
        inputs=inputs,
    )


def make_agreement(config: StudyConfig, task: TaskSpec, real: StepResult, kind, work: Path) -> dict[str, Any]:
    """Write agreement.jsonl for the test slice from `kind` (see `agreement_kind`); return its source and coverage.

    Crowd labels and a dataset's own ratings go through the same `AgreementAnalyzer`. Raises
    ValueError when no agreement item matches a test example id."""
    from subjlab.records import read_agreements, read_labels

    test = read_examples(real.path("test.jsonl"))
    how, path = kind
    if how == "data":
        from analysis.data_agreement import data_agreement

        result = data_agreement(test, task)
        records = result.agreements
        source = result.description
        if result.majority_matches_gold is not None:
            source += (f"; the raters' majority label is the gold label for {result.majority_matches_gold:.0%} of "
                       "the test items")
    elif how == "file":
        records = read_agreements(path)
        source = f"agreement file {path}"
    else:
        from analysis.agreement import AgreementAnalyzer

        analyzer = AgreementAnalyzer(label_order=task.labels).fit(read_labels(path))
        records = analyzer.agreements()
        source = f"crowd labels {path} (share of the majority label)"
    test_ids = {ex.id for ex in test}
    covered = [r for r in records if r.item in test_ids]
    if not covered:
        raise ValueError(f"task {task.name}: none of the {len(records)} agreement items ({source}) matches a test "
                         f"example id (e.g. {sorted(test_ids)[:3]})")
    write_records(work / "agreement.jsonl", covered)
    return {"source": source, "covered": len(covered), "test_size": len(test)}


def draw_suffix(draw: int | None) -> str:
    """The step-name suffix of the synthetic set generated with seed `draw` ("" for the one set of a
    study without [generation] set_per_seed)."""
    return "" if draw is None else f"-s{draw}"


def generate_step(config: StudyConfig, task: TaskSpec, base: Path, mode: str, real: StepResult,
                  draw: int | None = None):
    """Return (Step, fn) generating `mode` data for `task` into data.jsonl (generation engine), with
    seed `draw` (`config.draws()`; None: the study seed).

    Few-shot demonstrations are drawn from the study's real training slice (not the whole training
    split), so the real data a few-shot model has seen is exactly what the report says.
    """
    from generation.config import GenerationConfig

    g = config.generation
    probe = generation_config(GenerationConfig, config, task, mode, None, draw)
    params = {k: v for k, v in probe.to_dict().items() if k not in _GENERATION_UNHASHED}
    inputs = {"demonstrations": real.path("train.jsonl")} if mode == "few_shot" else {}
    step = Step(
        name=f"{task.name}/{mode}/generate{draw_suffix(draw)}",
        directory=base / mode / f"generate{draw_suffix(draw)}",
        params={"step": STEP_VERSIONS["generate"], "config": params, "task": task.to_dict()},  # prompts use the whole spec
        inputs=inputs,
        versions=code_versions("subjlab", "transformers" if g.backend == "local" else "openai"),
    )

    def fn(work: Path) -> dict[str, Any]:
        from generation.engine import generate

        pool_dir = None
        if mode == "few_shot":
            pool_dir = work / "demonstration_pool"
            rows = []
            for ex in read_examples(real.path("train.jsonl")):
                extra = dict(ex.extra)
                raw = extra.pop("raw_label", None)  # load_split maps labels again: give it the raw value
                rows.append(Example(id=ex.id, text=ex.text, label=raw if raw is not None else ex.label, extra=extra))
            write_records(pool_dir / task.data_name / "train.jsonl", rows)
        cfg = generation_config(GenerationConfig, config, task, mode, pool_dir, draw)
        summary = generate(cfg, work / "data.jsonl")
        if not summary.per_label or min(summary.per_label.values()) < 2:
            raise ValueError(f"{task.name} {mode}: generation produced too few clean texts to train on "
                             f"({summary.per_label}; stopped: {summary.stopped}); see {work / 'data.jsonl.summary.json'}")
        keep = ("backend", "model", "per_label_target", "per_label", "requests", "cache_hits", "retries", "tokens_in",
                "tokens_out", "estimated_cost_usd", "filters", "elapsed_s", "texts_per_s", "stopped")
        meta = {k: v for k, v in summary.to_dict().items() if k in keep}
        meta["complete"] = summary.complete
        return meta

    return step, fn


#: GenerationConfig fields that do not change what is generated (left out of the step key).
_GENERATION_UNHASHED = ("progress", "cache", "cache_path", "data_dir", "api_key", "request_timeout", "max_retries",
                        "backoff_base", "backoff_max", "price_in", "price_out")


def generation_config(cls, config: StudyConfig, task: TaskSpec, mode: str, data_dir: Path | None,
                      draw: int | None = None):
    """Return a `cls` (GenerationConfig) for `task` and `mode` ("zero_shot"/"few_shot") from the study
    config, seeded with `draw` (None: the study seed)."""
    g = config.generation
    settings: dict[str, Any] = {
        "task": task,
        "mode": mode.replace("_", "-"),
        "per_label": g.per_label,
        "backend": g.backend,
        "model": g.model or None,
        "base_url": g.base_url or None,
        "shots": g.few_shot_k,
        "seed": config.seed if draw is None else draw,
        "data_dir": data_dir,
        "progress": True,
    }
    settings.update(g.options)
    return cls(**settings)


def mix_step_data(small: Path, few_shot: Path, work: Path) -> dict[str, Any]:
    """Write train.jsonl = the small real set + the few-shot data into `work`; return its size."""
    rows = read_examples(small) + read_examples(few_shot)
    write_records(work / "train.jsonl", rows)
    return {"train_size": len(rows)}


def train_step(config: StudyConfig, task: TaskSpec, base: Path, cond: str, backbone: str, seed: int,
                train_file: Path, test_file: Path):
    """Return (Step, fn): fine-tune `backbone` on `train_file`, evaluate on `test_file`."""
    from training.config import TrainConfig

    n_train = len(read_examples(train_file))
    cfg = train_config(TrainConfig, config, task, backbone, seed, n_train=n_train)
    params = {k: v for k, v in cfg.to_dict().items() if k not in ("out_dir", "progress", "provenance")}
    step = Step(
        name=f"{task.name}/{cond}/train-{slug(backbone)}-s{seed}",
        directory=base / cond / f"train-{slug(backbone)}-s{seed}",
        params={"step": STEP_VERSIONS["train"], "config": params},
        inputs={"train": train_file, "test": test_file},
        versions=code_versions("subjlab", "torch", "transformers"),
    )

    def fn(work: Path) -> dict[str, Any]:
        from training import train_classifier

        run_cfg = train_config(TrainConfig, config, task, backbone, seed, out_dir=work, n_train=n_train,
                               provenance={"condition": cond, "train_file": train_file.name})
        train = read_examples(train_file)
        test = read_examples(test_file)
        result = train_classifier(run_cfg, train, test)
        return {"accuracy": result.metrics.accuracy, "macro_f1": result.metrics.macro_f1,
                "train_size": result.train_size, "val_size": result.val_size, "eval_size": result.eval_size,
                "steps": result.steps, "epochs": run_cfg.epochs, "model": result.model, "device": result.device}

    return step, fn


def train_config(cls, config: StudyConfig, task: TaskSpec, backbone: str, seed: int, out_dir: Path | None = None,
                 provenance: dict[str, Any] | None = None, n_train: int | None = None):
    """Return a `cls` (TrainConfig) for `task`, `backbone` and `seed` from the study config.

    With `n_train` (the training set's size) and `training.min_steps`, the epochs are raised (never
    lowered) so that a small training set still gets at least min_steps optimizer steps. Models are
    not saved by default (`training.options.save_model = true` keeps them)."""
    t = config.training
    settings: dict[str, Any] = {
        "model": "" if backbone == MINILM_ALIAS else backbone,
        "epochs": float(t.epochs),
        "batch_size": t.batch_size,
        "lr": t.learning_rate,
        "max_length": t.max_length,
        "seed": seed,
        "max_steps": t.max_steps or None,
        "save_model": False,
        "progress": True,
    }
    settings.update(t.options)
    if out_dir is not None:
        settings["out_dir"] = str(out_dir)
    if provenance:
        settings["provenance"] = provenance
    cfg = cls.for_task(task, **settings)
    if n_train and t.min_steps:
        import math

        n_fit = max(1, n_train - math.ceil(n_train * cfg.val_fraction))
        per_epoch = math.ceil(n_fit / cfg.batch_size)
        cfg.epochs = float(max(cfg.epochs, math.ceil(t.min_steps / per_epoch)))
    return cfg


def stratified_step(config: StudyConfig, task: TaskSpec, base: Path, cond: str, backbone: str,
                     trained: Sequence[StepResult], agreement: StepResult):
    """Return (Step, fn): accuracy and Macro-F1 per γ of the trained models (mean over seeds) with 95%
    bands (bootstrap over the items within each agreement level, pooled over seeds), gamma.json."""
    inputs = {f"predictions_{i}": r.path("predictions.jsonl") for i, r in enumerate(trained)}
    inputs["agreement"] = agreement.path("agreement.jsonl")
    e = config.evaluation
    step = Step(
        name=f"{task.name}/{cond}/stratified-{slug(backbone)}",
        directory=base / cond / f"stratified-{slug(backbone)}",
        params={"step": STEP_VERSIONS["stratified"], "gammas": list(e.gammas), "bootstrap": e.bootstrap,
                "seed": config.seed},
        inputs=inputs,
    )

    def fn(work: Path) -> dict[str, Any]:
        from analysis.intervals import LEVEL, gamma_estimates
        from subjlab.records import read_agreements, read_predictions

        amap = {a.item: a.agreement for a in read_agreements(agreement.path("agreement.jsonl"))}
        per_seed = [[p for p in read_predictions(r.path("predictions.jsonl")) if p.id in amap] for r in trained]
        bands = {metric: gamma_estimates(per_seed, amap, e.gammas, metric, e.bootstrap, config.seed)
                 for metric in ("accuracy", "macro_f1")}
        points = []
        for i, gamma in enumerate(e.gammas):
            acc, f1 = bands["accuracy"][i], bands["macro_f1"][i]
            points.append({
                "gamma": gamma, "n": acc.n if acc else 0,
                "accuracy": acc.value if acc else None, "macro_f1": f1.value if f1 else None,
                "accuracy_low": acc.low if acc else None, "accuracy_high": acc.high if acc else None,
                "macro_f1_low": f1.low if f1 else None, "macro_f1_high": f1.high if f1 else None,
            })
        write_json(work / "gamma.json", points)
        return {"points": points, "source": agreement.meta["source"], "level": LEVEL, "n_seeds": len(trained)}

    return step, fn


def diversity_step(config: StudyConfig, task: TaskSpec, base: Path, cond: str, train_file: Path, real_file: Path):
    """Return (Step, fn): Remote Clique / Chamfer of a training set and, for synthetic sets, its top-5
    similarity to the real train slice (diversity.json)."""
    with_similarity = cond in SYNTHETIC
    inputs = {"data": train_file}
    if with_similarity:
        inputs["reference"] = real_file
    step = Step(
        name=f"{task.name}/{cond}/diversity",
        directory=base / cond / "diversity",
        params={"step": STEP_VERSIONS["diversity"], "similarity": with_similarity},
        inputs=inputs,
        versions={**code_versions("subjlab", "sentence-transformers"), "embedder": embedder_id()},
    )

    def fn(work: Path) -> dict[str, Any]:
        from analysis.diversity import example_diversity

        report = example_diversity(read_examples(train_file),
                                   reference=read_examples(real_file) if with_similarity else None, per_item=True)
        data = report.to_dict()
        write_json(work / "diversity.json", data)
        items = {"remote_clique": list(report.remote_clique_items or ())}
        if with_similarity:
            items["similarity_top5"] = list(report.similarity_top5_items or ())
        write_json(work / DIVERSITY_ITEMS, items)
        return {"n": report.overall.n, "remote_clique": report.overall.remote_clique,
                "chamfer": report.overall.chamfer, "similarity_top5": report.similarity_top5}

    return step, fn


def _per_label(rows: Sequence[Example], task: TaskSpec) -> dict[str, int]:
    return {lab: sum(1 for ex in rows if ex.label == lab) for lab in task.labels}
