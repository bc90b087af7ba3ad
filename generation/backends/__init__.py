"""LLM backends behind one interface (`generation.backends.base.Backend`).

- `openai`: any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server)
  through the official `openai` async client (`generation.backends.openai_backend`).
- `openai-batch`: the same endpoints through the OpenAI Batch API (`generation.backends.openai_batch`).
- `local`: a Hugging Face causal LM on this machine, by default the packaged SmolLM2-135M-Instruct
  GGUF converted once and cached (`generation.backends.local`).

`make_backend(name, ...)` builds one by name; the heavy imports happen only there.
"""

from __future__ import annotations

from typing import Any

from generation.backends.base import Backend

BACKENDS = ("local", "openai", "openai-batch")


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Return a backend by name ("local" or "openai"); `kwargs` go to its constructor."""
    if name == "local":
        from generation.backends.local import LocalBackend

        return LocalBackend(**kwargs)
    if name == "openai":
        from generation.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(**kwargs)
    if name == "openai-batch":
        from generation.backends.openai_batch import OpenAIBatchBackend

        return OpenAIBatchBackend(**kwargs)
    raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
