"""Sending requests ahead of their round, for endpoints that serve calls at once, one request per
call ("openai").

While a round's slowest requests are still out, the next round's likely requests are already
sent: a conversation's next turn as soon as its own reply is in, a new lane's first request at
once, guessing that each reply yields one accepted text (no stall). The next round is still
planned only from what was committed; it adopts the requests it planned that were sent ahead and
drops the rest (`RequestDispatcher.start`/`discard`). Each request sent ahead takes its place in the
budget when it is sent (so the budget caps every call made, and where a run stops does not depend
on timing); requests the cache will answer are not sent ahead.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from generation.backends.base import ChatRequest, ChatResponse
from generation.config import GenerationConfig
from generation.lane_schedule import LaneScheduler
from generation.planning import Lane, PlannedRequest, Planner, next_turn
from generation.prompts import Message
from generation.request_dispatch import Calls, RequestDispatcher, SentAhead, request_ident


class AheadSender:
    """Starts the next round's likely requests while this round finishes."""

    def __init__(self, config: GenerationConfig, planner: Planner, scheduler: LaneScheduler,
                 dispatcher: RequestDispatcher):
        self.config = config
        self.planner = planner
        self.scheduler = scheduler
        self.dispatcher = dispatcher

    def send(self, lanes: list[Lane], hits: dict[int, ChatResponse], calls: Calls, tracked: Counter[str],
             next_index: dict[str, int]) -> None:
        """Start the requests the next round will most likely make (see the module docstring).

        lanes, hits, calls: this round's lanes, cache hits and calls (as `RequestDispatcher.start`
        returned them); tracked: accepted texts per label so far; next_index: the next new lane's
        index per label (not advanced here)."""
        c = self.config
        d = self.dispatcher
        room = d.budget - d.used
        if room <= 0:
            return
        replies: dict[int, ChatResponse | asyncio.Task] = dict(hits)
        for chunk, task in calls:
            replies[chunk[0]] = task
        this_round = Counter(lane.label for lane in lanes)
        need = {lab: max(0, c.per_label - tracked[lab] - this_round[lab]) for lab in c.run_labels}
        position = {id(lane): i for i, lane in enumerate(lanes)}
        going_on = [lane for lane in lanes if lane.conversation is not None and lane.conversation.turn + 1 < c.max_turns]
        for lane in self.scheduler.assign(going_on, need, dict(next_index)):
            if room <= 0:
                break
            handle = SentAhead()
            reply = replies.get(position[id(lane)]) if id(lane) in position else None
            if isinstance(reply, asyncio.Task):  # the next turn waits for this turn's reply
                conv = lane.conversation
                assert conv is not None
                ident = (lane.label, lane.index, conv.turn + 1)
                coro = self._turn(lane, list(conv.history), conv.turn, reply, handle)
            else:
                planned = self.planner.plan(lane if reply is None else next_turn(lane, lane.conversation.history,
                                                                                  lane.conversation.turn, reply))
                if d.cached(planned) is not None:
                    continue  # the round will find it in the cache
                ident = request_ident(planned)
                coro = self._request(planned, handle)
            handle.task = asyncio.ensure_future(coro)
            d.ahead[ident] = handle
            d.used += 1
            room -= 1

    async def _turn(self, lane: Lane, history: list[Message], turn: int,
                    reply: asyncio.Task, handle: SentAhead) -> tuple[ChatRequest, ChatResponse]:
        """The next turn of a conversation, sent once this round's reply to it is in."""
        response = (await asyncio.shield(reply))[0]  # shield: dropping this must not cancel the round's call
        return await self._request(self.planner.plan(next_turn(lane, history, turn, response)), handle)

    async def _request(self, planned: PlannedRequest, handle: SentAhead) -> tuple[ChatRequest, ChatResponse]:
        hit = self.dispatcher.cached(planned)
        if hit is not None:  # the round will find it in the cache itself
            return planned.request, hit
        return planned.request, (await self.dispatcher.call([planned.request], handle))[0]
