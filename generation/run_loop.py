"""The run loop of a generation run: resume what the output holds, then round after round (plan,
send, commit, make durable) until every label has its texts or the budget is spent.

Each round: `LaneScheduler` picks the lanes, `Planner` plans one request each,
`RequestDispatcher` answers them (cache, budget, backend), `AheadSender` starts the next round's
likely requests meanwhile ("openai"), `RoundCommitter` keeps the clean texts in lane order, and
`_persist` makes the round durable: its responses into the cache in one transaction, then its
records into the output with one write and one fsync. Nothing counts as written before that fsync
returns. The summary is written at the end, also after an error.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from generation.backends.base import Backend, BackendAuthError
from generation.config import GenerationConfig
from generation.filters import TextFilter
from generation.lane_schedule import LaneScheduler
from generation.output_file import OutputWriter, load_output
from generation.planning import Lane, Planner
from generation.pricing import price_for
from generation.request_dispatch import GenerationError, RequestDispatcher
from generation.round_commit import RoundCommitter, record_origin
from generation.run_summary import RunSummary, summary_path, write_summary
from generation.sending_ahead import AheadSender
from subjlab.records import Example


class GenerationRun:
    """One run of `config` into `out_path` with `backend`: `await GenerationRun(...).run()`."""

    def __init__(self, config: GenerationConfig, out_path: Path, backend: Backend):
        self.config = config
        self.out_path = out_path
        self.backend = backend
        self.labels = config.run_labels
        self.target = config.per_label
        self.summary = RunSummary(
            task=config.spec.name,
            mode=config.mode,
            backend=backend.name,
            model=backend.model,
            out=str(out_path),
            per_label_target=self.target,
            per_label={lab: 0 for lab in self.labels},
            config=config.to_dict(),
        )
        self.planner = Planner(config, backend)
        self.filter = TextFilter(config.filter_settings())
        self.dispatcher = RequestDispatcher(config, backend, self.summary)
        self.scheduler = LaneScheduler(config, self.planner, self.summary)
        self.committer = RoundCommitter(config, backend, self.filter, self.summary)
        # Requests are sent ahead of their round only to endpoints that serve calls at once, one
        # request per call ("openai"): the local model computes here (a request sent for nothing
        # costs real compute) and the Batch API takes a whole round as one batch.
        send_ahead = backend.max_batch == 1 and backend.concurrent_calls
        self.sender = AheadSender(config, self.planner, self.scheduler, self.dispatcher) if send_ahead else None
        self.price = price_for(backend.name, backend.model, config.price_in, config.price_out)

    async def run(self) -> RunSummary:
        """Run to the end; return the summary (also written to `<out>.summary.json`)."""
        from tqdm.auto import tqdm

        c = self.config
        dispatcher = self.dispatcher
        start = time.monotonic()
        try:
            existing = load_output(self.out_path, c.spec.name, c.mode)
        except BaseException:  # another run's file: leave it (and its summary) alone
            if dispatcher.cache is not None:
                dispatcher.cache.close()
            raise
        self.summary.repaired_tail = existing.repaired
        self.summary.resumed = len(existing.records)
        file_count: Counter[str] = Counter(str(r.label) for r in existing.records)
        origins = {o for o in map(record_origin, existing.records) if o is not None}
        replay = dispatcher.cache is not None
        tracked: Counter[str] = Counter() if replay else Counter({lab: file_count[lab] for lab in self.labels})
        next_index = {lab: 0 for lab in self.labels}
        if not replay:
            for lab, index, _, _ in origins:
                if lab in next_index:
                    next_index[lab] = max(next_index[lab], index + 1)
        if existing.records:
            self.filter.prepare((), [r.text for r in existing.records])
            for r in existing.records:
                self.filter.add(r.text, count=False)
        lanes: list[Lane] = []
        bar = tqdm(
            total=self.target * len(self.labels),
            initial=sum(min(file_count[lab], self.target) for lab in self.labels),
            desc=f"{c.spec.name} {c.mode}",
            unit="text",
            disable=not c.progress,
            dynamic_ncols=True,
        )
        written = 0
        try:
            with OutputWriter(self.out_path) as writer:
                while any(file_count[lab] < self.target for lab in self.labels):
                    need = {lab: self.target - tracked[lab] for lab in self.labels}
                    lanes = self.scheduler.assign(self.scheduler.going_on(lanes, need), need, next_index)
                    planned = [self.planner.plan(lane) for lane in lanes]
                    self.summary.trimmed_requests += sum(1 for p in planned if p.trimmed_turns)
                    hits, calls, cut = dispatcher.start(planned, dispatcher.keys(planned))
                    if self.sender is not None and not cut:
                        self.sender.send(lanes, hits, calls, tracked, next_index)
                    responses = await dispatcher.gather(len(planned), hits, calls)
                    self.summary.rounds += 1
                    accepted_before = sum(tracked.values())
                    records = self.committer.commit_round(lanes, planned, responses, origins, tracked, file_count)
                    # texts this round accepted, those an earlier run already wrote included, so that
                    # a resumed run replays the same lanes
                    self.scheduler.observe(len(planned), sum(tracked.values()) - accepted_before)
                    await self._persist(writer, records)
                    written += len(records)
                    bar.update(len(records))
                    bar.set_postfix(requests=self.summary.requests, cached=self.summary.cache_hits, refresh=False)
                    if cut:
                        self.summary.stopped = "budget"
                        break
                    if not planned:  # nothing left to ask: cannot happen while a label is short
                        break
        except (GenerationError, BackendAuthError) as exc:
            self.summary.stopped = f"error: {exc}"
            raise
        finally:
            bar.close()
            await dispatcher.drop_all_ahead()
            dispatcher.close()  # replies paid for: keep them
            self._finish_summary(written, file_count, time.monotonic() - start)
            write_summary(self.summary, summary_path(self.out_path))
        return self.summary

    async def _persist(self, writer: OutputWriter, records: list[Example]) -> None:
        """Make a round durable: its responses in the cache (one transaction), then its records in
        the output (one write, one fsync, off the event loop so replies keep arriving meanwhile).
        Every record on disk thus has its response cached, which a resumed run replays."""
        self.dispatcher.flush_cache()
        if records:
            await asyncio.to_thread(writer.write_many, records)

    def _finish_summary(self, written: int, file_count: Counter[str], elapsed: float) -> None:
        s = self.summary
        s.written = written
        s.per_label = {lab: file_count[lab] for lab in self.labels}
        s.filters = self.filter.counts()
        s.elapsed_s = round(elapsed, 3)
        limiter = self.dispatcher.limiter
        s.rate_limit = None if limiter is None else limiter.report()
        s.texts_per_s = round(written / s.elapsed_s, 3) if s.elapsed_s > 0 else 0.0
        s.estimated_cost_usd = None if self.price is None else round(self.price.cost(s.tokens_in, s.tokens_out), 6)
