"""`tests.support.openai_server`: the loopback stand-in runs as a script from the repository root,
as docs/generation.md shows it, and answers the real `openai` client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from openai import OpenAI

REPO = Path(__file__).resolve().parents[2]


def test_the_stand_in_runs_as_a_module_from_the_repo_root_and_answers_the_openai_client():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--canned", "0", "--port", "0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("serving canned at http://127.0.0.1:"), (first, proc.stderr.read() if proc.poll() else "")
        url = first.split(" at ", 1)[1].split(" ", 1)[0]
        client = OpenAI(base_url=url, api_key="none", max_retries=0, timeout=30)
        reply = client.chat.completions.create(model="canned", messages=[{"role": "user", "content": "hello"}])
        text = reply.choices[0].message.content
        assert text.endswith(".") and len(text.split()) == 9
        assert reply.usage.prompt_tokens == 6  # ceil(5 / 4) + 4, the stand-in's token rule
    finally:
        proc.terminate()
        proc.wait(timeout=10)
