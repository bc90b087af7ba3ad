"""The dataset card (README.md) of an export: YAML metadata as the Hugging Face Hub reads it, then the
provenance in prose (template `card.md.j2`).

`card_metadata(...)` builds the YAML block with huggingface_hub's `DatasetCardData` (license,
task_categories, configs with their parquet files per split, size, tags); `render_card(...)` fills
the template from the provenance records of `subjlab.export.provenance`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from subjlab.export.provenance import CrowdProvenance, GeneratedProvenance, Licence

TEMPLATE = Path(__file__).resolve().parent / "card.md.j2"

#: The Hub's size buckets (upper bound, label).
_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
          (10_000_000, "1M<n<10M"))


def size_category(n: int) -> str:
    """The Hub's size category of a dataset of `n` rows."""
    return next((label for bound, label in _SIZES if n < bound), "n>10M")


def card_metadata(kind: str, licence: Licence, title: str, data_files: list[dict[str, Any]], rows: int,
                  english: bool) -> str:
    """The card's YAML block (without the --- fences)."""
    from huggingface_hub import DatasetCardData

    generated = kind == "generated"
    data = DatasetCardData(
        license=licence.hub_id,
        pretty_name=title,
        task_categories=["text-classification"],
        language=["en"] if english else None,
        annotations_creators=["machine-generated" if generated else "crowdsourced"],
        language_creators=["machine-generated"] if generated else None,
        size_categories=[size_category(rows)],
        tags=["subjlab", "synthetic"] if generated else ["subjlab", "crowdsourcing", "annotator-disagreement"],
        configs=data_files,
    )
    return data.to_yaml()


def render_card(*, kind: str, title: str, intro: str, licence: Licence, data_files: list[dict[str, Any]],
                generated: Sequence[GeneratedProvenance] = (), crowd: Sequence[CrowdProvenance] = (),
                english: bool = True, version: str, exported_at: str, splits: dict[str, dict[str, int]]) -> str:
    """The whole README.md: metadata, contents, how to load, per config how it was made, licence, warnings."""
    from jinja2 import Environment, StrictUndefined

    rows = sum(n for per_split in splits.values() for n in per_split.values())
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    warnings = [f"`{p.config}`: {w}" for p in [*generated, *crowd] for w in p.warnings]
    return template.render(
        metadata=card_metadata(kind, licence, title, data_files, rows, english).strip(),
        kind=kind, title=title, intro=intro, version=version, exported_at=exported_at,
        configs=[{"name": name, "splits": per_split} for name, per_split in splits.items()],
        generated=[p.to_dict() for p in generated], crowd=[p.to_dict() for p in crowd],
        licence=licence, warnings=warnings,
    )
