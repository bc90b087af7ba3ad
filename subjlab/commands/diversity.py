"""`subjlab diversity`: Remote Clique / Chamfer diversity of a text set, and top-5 similarity to real data."""

from __future__ import annotations

import sys

import click

from subjlab.commands._output import FORMAT_OPTION, emit_json, emit_table


@click.command()
@click.argument("data_file", metavar="DATA.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "--reference",
    "reference_file",
    metavar="REAL.jsonl",
    type=click.Path(dir_okay=False),
    default=None,
    help="Real examples to compare with: adds similarity_top5 (for each real text, the mean cosine "
    "similarity to its 5 most similar DATA texts, averaged over real texts).",
)
@FORMAT_OPTION
@click.option("--model", "model_path", default=None, help="Sentence-transformers model directory or locally cached id [default: the packaged all-MiniLM-L6-v2].")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Texts per model forward pass.")
@click.option("--block-size", type=click.IntRange(min=1), default=None, help="Rows per block of the similarity matrix [default: about 64 MiB per block].")
@click.option("--no-cache", is_flag=True, help="Do not read or write the embedding cache ($SUBJLAB_CACHE/embeddings).")
@click.option("--limit-per-label", type=click.IntRange(min=1), default=None, help="Use a seeded random sample of at most N texts per label (of DATA and of the reference).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --limit-per-label's sample.")
def diversity(
    data_file: str,
    reference_file: str | None,
    fmt: str,
    model_path: str | None,
    batch_size: int,
    block_size: int | None,
    no_cache: bool,
    limit_per_label: int | None,
    seed: int,
) -> None:
    """Diversity of the texts in DATA.jsonl (examples: "text", "label"), overall and per label.

    \b
    Texts are embedded with all-MiniLM-L6-v2 (cached by text hash; nothing is downloaded) and
    compared by cosine distance d = 1 - cos (after Cox et al. 2021, "Directed Diversity"):
      remote_clique  mean over texts of the mean distance to every OTHER text; pairs i != j
                     only (the diagonal is excluded). Higher = more diverse.
      chamfer        mean over texts of the distance to the nearest OTHER text. Higher = more
                     diverse; 0 when every text has a duplicate.
      similarity_top5  (with --reference) for each real text, the mean cosine similarity to its
                     5 most similar DATA texts, averaged over real texts. Higher = closer to real.
    A label with a single text is shown with n=1 and empty (null) metrics. Memory stays
    O(n*d): 50,000 texts fit in a few hundred MB.

    \b
    Examples:
      subjlab diversity synthetic.jsonl --reference real.jsonl
      subjlab diversity real.jsonl --limit-per-label 500 --format json
    """
    from analysis.diversity import example_diversity
    from subjlab.data import sample_per_label
    from subjlab.records import read_examples

    examples = read_examples(data_file)
    reference = read_examples(reference_file) if reference_file else None
    if limit_per_label is not None:
        examples = sample_per_label(examples, limit_per_label, seed)
        if reference is not None:
            reference = sample_per_label(reference, limit_per_label, seed)
    report = example_diversity(
        examples,
        reference,
        model_path=model_path,
        batch_size=batch_size,
        cache=not no_cache,
        progress=sys.stderr.isatty(),
        block_size=block_size,
    )
    if fmt == "json":
        emit_json(report.to_dict())
        return
    rows = [[label, s.n, s.remote_clique, s.chamfer] for label, s in report.per_label.items()]
    rows.append(["(overall)", report.overall.n, report.overall.remote_clique, report.overall.chamfer])
    emit_table("Diversity (cosine distance)", ["label", "n", "remote_clique", "chamfer"], rows)
    click.echo(f"data: {data_file}; embeddings: {report.model}")
    click.echo("remote_clique averages over pairs i != j (diagonal excluded); higher = more diverse")
    if report.similarity_top5 is not None:
        click.echo(f"similarity_top5 to {reference_file} ({report.reference_n} real texts): {report.similarity_top5:.4f}")
