"""`subjlab generate`: synthetic labeled texts from an LLM, zero- or few-shot (see generation.engine)."""

from __future__ import annotations

import sys

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table


def _labels(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    labels = tuple(v.strip() for v in value.split(",") if v.strip())
    if not labels:
        raise click.BadParameter("give at least one label, e.g. --labels spam,ham")
    return labels


@click.command(context_settings={"max_content_width": 100})
@click.option("--task", required=True, help="Task: a registry key (see `subjlab tasks`) or a .toml/.yaml task file.")
@click.option("--mode", type=click.Choice(["zero-shot", "few-shot"]), default="zero-shot", show_default=True,
              help="zero-shot: context + generation prompt, diversity prompt every N turns; "
              "few-shot: context + K real labeled examples + imitation instruction.")
@click.option("--per-label", type=click.IntRange(min=1), required=True, help="Clean texts to produce per label.")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True,
              help="Output JSON Lines file. Appended to; re-running the same command resumes it.")
@click.option("--backend", type=click.Choice(["local", "openai", "openai-batch"]), default="local", show_default=True,
              help="local: SmolLM2-135M-Instruct (or --model PATH) on this machine; "
              "openai: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp); "
              "openai-batch: the OpenAI Batch API (one batch per round, half the price).")
@click.option("--base-url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
              "[default: $OPENAI_BASE_URL, else OpenAI].")
@click.option("--api-key", default=None, help="API key [default: $OPENAI_API_KEY]. Prefer the environment variable.")
@click.option("--model", default=None, help="openai: model name [default: gpt-3.5-turbo]; "
              "local: a .gguf file or Hugging Face model directory [default: packaged SmolLM2].")
@click.option("--labels", "labels", default=None, help="Only these labels, comma-separated (default: all).")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="openai: the most requests in flight. Fewer go, and paced, when the endpoint says so: "
              "its x-ratelimit-* headers when it sends them, else its 429s (additive increase, multiplicative "
              "decrease, never below 1); the summary says where it settled. local: conversations generated per batch.")
@click.option("--fixed-concurrency", is_flag=True,
              help="openai: keep --concurrency requests in flight whatever the endpoint says; 429s are then "
              "retried like other errors, up to --max-retries.")
@click.option("--conversations", type=click.IntRange(min=1), default=None,
              help="Conversations advanced per round [default: 4 x concurrency (openai), concurrency (local), "
              "1000 (openai-batch: one batch per round)].")
@click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="openai-batch: seconds between checks of a running batch.")
@click.option("--diversity-every", type=click.IntRange(min=0), default=5, show_default=True,
              help="Zero-shot: send the diversity prompt every N turns of a conversation (0: never).")
@click.option("--max-turns", type=click.IntRange(min=1), default=20, show_default=True,
              help="Zero-shot: turns per conversation before a new one starts.")
@click.option("--stall-turns", type=click.IntRange(min=0), default=2, show_default=True,
              help="Zero-shot: abandon a conversation after N turns in a row without an accepted text "
                   "(the model repeating itself) and start a new one (0: never).")
@click.option("--shots", type=click.IntRange(min=1), default=4, show_default=True,
              help="Few-shot: real examples per prompt, balanced across labels.")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True)
@click.option("--top-p", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=None,
              help="Completion tokens per request [default: 2 x word limit + 16].")
@click.option("--max-requests", type=click.IntRange(min=0), default=None,
              help="Budget of backend calls; the run stops when it is spent [default: 10 per text, at least 100].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds sampling and few-shot example choice.")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds before a request times out (then it is retried).")
@click.option("--max-retries", type=click.IntRange(min=0), default=6, show_default=True,
              help="Retries per request on 5xx/timeouts/malformed bodies (backoff with jitter, Retry-After honoured). "
              "openai: 429s are waited out without counting while the endpoint served anything in the last "
              "max-retries x 60 s.")
@click.option("--context-window", type=click.IntRange(min=16), default=None,
              help="Model context window in tokens [default: the model's; 16385 for openai].")
@click.option("--near-dup-threshold", type=click.FloatRange(min=0, max=1, min_open=True), default=0.95, show_default=True,
              help="Reject texts whose MiniLM cosine similarity to a kept text is at least this.")
@click.option("--demo-copy-threshold", type=click.FloatRange(min=0, max=1, min_open=True), default=0.90, show_default=True,
              help="Few-shot: reject texts this similar to one of their demonstrations.")
@click.option("--no-embedding-filters", is_flag=True, help="Skip the two MiniLM checks (exact duplicates are still removed).")
@click.option("--word-margin", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Texts may exceed the task's word limit by this fraction.")
@click.option("--price-in", type=click.FloatRange(min=0), default=None, help="USD per 1M input tokens (cost estimate).")
@click.option("--price-out", type=click.FloatRange(min=0), default=None, help="USD per 1M output tokens (cost estimate).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Local backend: torch threads while generating [default: torch's]. On a busy shared CPU, 1 is often fastest.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the response cache.")
@click.option("--cache-path", type=click.Path(dir_okay=False), default=None,
              help="Response cache file [default: <cache>/generation/responses.sqlite; <cache> = $SUBJLAB_CACHE "
              "or ~/.cache/subjlab].")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="Data directory for few-shot examples [default: $SUBJLAB_DATA, else the slices bundled with subjlab].")
@click.option("--dry-run", is_flag=True, help="Print the exact messages of each label's first request and exit; calls nothing.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@FORMAT_OPTION
def generate(**kw) -> None:
    """Generate labeled synthetic texts for a task with an LLM, the way Li et al. (2023) did.

    Zero-shot: a context prompt (persona), a generation prompt naming the label, style and word
    limit, and after every N texts "Can you provide something more diverse compared to the
    previously generated data?" in the same conversation. Few-shot: K real examples with their
    labels and "You should imitate the example I have provided, but you cannot simply modify or
    rewrite the example I have given".

    Responses are parsed (lists, bullets, quotes, "Text:" prefixes) and filtered (empty, outside
    the word limit, refusals/meta-talk, exact and near duplicates, copies of the demonstrations);
    generation continues until --per-label clean texts exist per label or --max-requests is spent.
    Output is appended as it is produced: after a crash, re-run the same command to continue. A
    summary (requests, tokens, estimated cost, filter counts, texts/s) is printed and written to
    OUT.summary.json.

    \b
    Examples:
      subjlab generate --task sms_spam --per-label 5 --out spam.jsonl --dry-run
      subjlab generate --task sms_spam --per-label 5 --out spam.jsonl --max-tokens 48
      OPENAI_API_KEY=sk-... subjlab generate --task imdb --mode few-shot --per-label 3000 \\
          --backend openai --model gpt-3.5-turbo --concurrency 16 --out imdb_fewshot.jsonl
    """
    from generation.engine import GenerationConfig, GenerationError, format_messages, generate as run, preview_requests
    from generation.prompts import DIVERSITY_PROMPT

    no_embed = kw["no_embedding_filters"]
    config = GenerationConfig(
        task=kw["task"],
        mode=kw["mode"],
        per_label=kw["per_label"],
        labels=_labels(kw["labels"]),
        backend=kw["backend"],
        model=kw["model"],
        base_url=kw["base_url"],
        api_key=kw["api_key"],
        concurrency=kw["concurrency"],
        adaptive_concurrency=not kw["fixed_concurrency"],
        conversations=kw["conversations"],
        diversity_every=kw["diversity_every"],
        max_turns=kw["max_turns"],
        stall_turns=kw["stall_turns"],
        shots=kw["shots"],
        temperature=kw["temperature"],
        top_p=kw["top_p"],
        max_tokens=kw["max_tokens"],
        seed=kw["seed"],
        max_requests=kw["max_requests"],
        request_timeout=kw["request_timeout"],
        max_retries=kw["max_retries"],
        context_window=kw["context_window"],
        cache=not kw["no_cache"],
        cache_path=kw["cache_path"],
        data_dir=kw["data_dir"],
        word_margin=kw["word_margin"],
        near_duplicate_threshold=None if no_embed else kw["near_dup_threshold"],
        demo_copy_threshold=None if no_embed else kw["demo_copy_threshold"],
        price_in=kw["price_in"],
        price_out=kw["price_out"],
        threads=kw["threads"],
        batch_poll_interval=kw["poll_interval"],
        progress=not kw["no_progress"],
    )
    if kw["dry_run"]:
        planned = preview_requests(config)
        if kw["fmt"] == "json":
            emit_json([
                {"label": p.label, "prompt_hash": p.prompt_hash, "demonstration_ids": [d.id for d in p.demonstrations],
                 "messages": [m.to_dict() for m in p.request.messages], "parameters": p.request.parameters()}
                for p in planned
            ])
            return
        for p in planned:
            click.echo(f"=== label {p.label!r} · first request · prompt_hash {p.prompt_hash} ===")
            click.echo(format_messages(p.request.messages))
        if config.mode == "zero-shot" and config.diversity_every > 0:
            click.echo(f"Later turns repeat the generation prompt in the same conversation; every "
                       f"{config.diversity_every}th turn asks instead:\n[user]\n{DIVERSITY_PROMPT}\n")
        click.echo(f"dry run: nothing was sent (backend {config.backend}, max tokens {config.effective_max_tokens}, "
                   f"temperature {config.temperature}, top_p {config.top_p}, seed {config.seed}).")
        return
    try:
        summary = run(config, kw["out"])
    except GenerationError as exc:
        click.echo(f"error: {exc} (the output so far is kept: re-run the same command to continue)", err=True)
        sys.exit(1)
    if kw["fmt"] == "json":
        emit_json(summary.to_dict())
        return
    f = summary.filters
    cost = "unknown (no price for this model; pass --price-in/--price-out)" if summary.estimated_cost_usd is None \
        else f"${summary.estimated_cost_usd:.4f}"
    rows = [
        ["texts per label", ", ".join(f"{k}: {v}" for k, v in summary.per_label.items()) + f" (target {summary.per_label_target})"],
        ["written / resumed", f"{summary.written} / {summary.resumed}"],
        ["requests (cache hits, retries)", f"{summary.requests} ({summary.cache_hits}, {summary.retries})"],
        ["sent ahead, unused", summary.unused_requests],
        ["conversations abandoned (stalled)", summary.abandoned_conversations],
        ["tokens in / out", f"{summary.tokens_in} / {summary.tokens_out}"],
        ["estimated cost", cost],
        ["candidates parsed", summary.candidates],
        ["rejected", ", ".join(f"{k} {v}" for k, v in f.items() if k != "accepted")],
        ["surplus (label already full)", summary.surplus],
        ["texts/s", f"{summary.texts_per_s:.2f} ({summary.elapsed_s:.1f} s)"],
        ["stopped", summary.stopped],
    ]
    if summary.backend == "openai":
        from generation.limiter import describe

        rows.insert(-2, ["rate limit", describe(summary.rate_limit)])
    emit_table(f"generate {summary.task} {summary.mode} with {summary.backend}:{summary.model} -> {summary.out}",
               ["", "value"], rows)
    if not summary.complete:
        click.echo(f"warning: stopped before every label had {summary.per_label_target} texts ({summary.stopped}); "
                   "raise --max-requests and re-run to continue", err=True)
