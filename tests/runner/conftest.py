"""Runner test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run the runner tests' models on one torch thread, then restore the setting.

    The test machine is shared by several jobs; two intra-op threads per process oversubscribe its
    2 cores and made a MiniLM forward pass 7x slower than one thread (0.71 s vs 0.09 s, measured).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
