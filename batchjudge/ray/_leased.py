"""The worker's side of a shared limiter: the limits an :class:`~batchjudge.engine.judge.OnlineJudge`
calls (:class:`~batchjudge.engine.limits.SendLimits`), backed by leases.

The judge runs unchanged in every worker; only its limits differ. :class:`LeasedLimits`
keeps no pacing or learning of its own: it holds the send times and tokens its limiter lent
it, sends at those times, and forwards every piece of server feedback (send times, replies
with their usage and rate-limit headers, successes, 429s with their ``Retry-After`` and
headers) to the limiter, which applies it with the engine's own
:class:`~batchjudge.engine.limits.Limits`. What it must obey at once (a cooldown, a new
concurrency, a limit now known, a stop) comes back with every answer and from a long poll, so
a 429 anywhere pauses every worker; the workers of one machine also share the pause on a
:class:`~._board.CooldownBoard`, without the round trip. What stays here is what belongs to one process: the
circuit breaker of its connections (:class:`~batchjudge.engine.breaker.Breaker`), the
estimate of a request's tokens, and the count of requests on the wire.

A booked send time is used only if it is still good right before the send: a cooldown or an
open breaker voids it, and so does being later than the limiter's slack allows (a late send
could crowd the next window); either way it goes back to the limiter to be booked again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.engine.breaker import ABORT_AFTER_S, Breaker
from batchjudge.engine.limits import (
    LATE_WRITE_S,
    NEW_CONNECTION_GUARD_S,
    Clock,
    Cooldown,
    Reservation,
    SendingStopped,
    Sleep,
    TokenEstimate,
)
from batchjudge.engine.sizing import Sizer
from batchjudge.engine.stats import RunStats
from batchjudge.ray._board import CooldownBoard
from batchjudge.ray._limiter import Broadcast, LimiterClient, RateLimited, Report, Settled, rate_headers

__all__ = ["LeasedLimits"]


@dataclass(slots=True)
class _Leased(Reservation):
    """A reservation made under leases: its send time on the limiter's clock and the token
    lease it drew on."""

    booked: float = math.nan
    lease: int | None = None


class LeasedLimits:
    """The :class:`~batchjudge.engine.limits.SendLimits` of one worker for one endpoint.

    ``concurrency`` is this worker's ceiling; what it keeps in flight is sized for the whole
    pace the limiter broadcasts and its own replies' latency
    (:class:`~batchjudge.engine.sizing.Sizer`), under that ceiling lowered by the limiter's
    answer to 429 episodes. The whole pace, not an equal share of it: the workers do not get
    equal shares of the rows (the shared pacer lends send times to whoever asks), and with each
    sized for a quarter a 4-worker run at 100 RPS reached 84% of the limit (one run, on a loaded
    machine: under the test's 88%); more in flight than
    needed costs only memory, since the shared pacer decides when each request leaves.
    :meth:`run` must be running (in the owner's task group) for reports to be sent and
    broadcasts received.
    """

    def __init__(
        self,
        client: LimiterClient,
        *,
        concurrency: int,
        expected_completion_tokens: int,
        clock: Clock,
        sleep: Sleep,
        stats: RunStats | None = None,
        flush_interval: float = 0.1,
        outage_abort_after: float = ABORT_AFTER_S,
        board: CooldownBoard | None = None,
    ) -> None:
        self.max_concurrency = concurrency
        self.capacity = anyio.CapacityLimiter(concurrency)
        self.sizer = Sizer(self.capacity, concurrency, clock=clock)
        self.clock = clock
        self.sleep = sleep
        self.stats = stats if stats is not None else RunStats()
        self.cooldown = Cooldown(clock, sleep)
        self.breaker = Breaker(clock=clock, sleep=sleep, abort_after=outage_abort_after)
        self.stopping = False
        self.sending = 0
        self.estimate = TokenEstimate(expected_completion_tokens)
        self.flush_interval = flush_interval
        self._client = client
        self._board = board
        """The pause shared with the workers of this machine (``clock`` must be the machine's
        monotonic clock then), read before each send: a 429 reaches them without a round trip."""
        self._state: Broadcast | None = None
        """The last broadcast; None until the limiter first answers (then sends need a lease)."""
        self._offset = 0.0
        """The limiter's clock minus this one: the largest ``now - arrival`` of its answers
        so far (see :meth:`_apply`)."""
        self._synced = False
        self._slots: deque[float] = deque()
        """Leased send times, on the limiter's clock."""
        self._tokens: deque[tuple[int, float]] = deque()
        """Leased tokens not yet used: ``[lease, tokens left]``, oldest first."""
        self._line = anyio.Lock()
        self._waiting = 0
        self._report = Report()
        self._flush_now = anyio.Event()

    @property
    def expected_completion(self) -> float:
        """Completion tokens a reply is expected to use (learned from this worker's replies)."""
        return self.estimate.expected_completion

    def charge(self, request: JudgeRequest) -> Reservation:
        """What ``request`` must reserve (the engine's own estimate)."""
        return _Leased(self.estimate.charge(request), request.prompt_tokens)

    def stop_sending(self) -> None:
        """From now on every :meth:`before_send` raises SendingStopped."""
        self.stopping = True

    # -- before a send -------------------------------------------------------------------
    async def before_send(self, reservation: Reservation) -> None:
        """Wait for leased tokens, then a leased send time, then the breaker and the cooldown,
        in line (first come, first served)."""
        assert isinstance(reservation, _Leased)
        if self.stopping:
            raise SendingStopped
        self._waiting += 1
        try:
            async with self._line:
                state = self._state
                if state is None or state.token_limit:
                    await self._take_tokens(reservation)
                while not await self._take_slot(reservation):
                    if self.stopping:
                        raise SendingStopped
        except BaseException:
            self.breaker.release(reservation.ticket)
            reservation.ticket = None
            if not math.isnan(reservation.booked):  # never sent: its time goes back
                self._report.unused_slots.append(reservation.booked)
            if reservation.probe:  # ...and the other workers need not wait for it
                self._report.probe_done = True
                self._flush_now.set()
            raise
        finally:
            self._waiting -= 1
        reservation.sent_at = self.clock()
        self._report.sent.append(reservation.booked)

    async def _take_tokens(self, reservation: _Leased) -> None:
        """Draw the reservation's tokens from the leased ones, leasing more when short."""
        need = reservation.tokens
        while sum(left for _, left in self._tokens) < need:
            state = self._state
            if state is not None:  # a request over the limit goes alone, as in one process
                need = min(need, state.token_limit)
            chunk = state.token_chunk if state is not None else 0.0
            if not await self._lease(tokens=max(need, min(need * self._waiting, chunk))):
                return  # the endpoint has no token limit (any more)
        while need > 1e-9:
            lease, left = self._tokens[0]
            take = min(left, need)
            need -= take
            reservation.lease = lease
            if left - take <= 1e-9:
                self._tokens.popleft()
            else:
                self._tokens[0] = (lease, left - take)

    async def _take_slot(self, reservation: _Leased) -> bool:
        """Wait for the next leased send time, then pass the breaker and the cooldown; False
        when the time turned out unusable (it is given back and the caller tries again)."""
        state = self._state
        if state is not None and not state.paced:
            await self._gate(reservation)
            reservation.booked = self.clock() + self._offset
            return True
        if not self._slots:
            await self._lease(slots=self._waiting, probe=reservation)
            if not self._slots:  # not paced after all: nothing to wait for
                return False
        reservation.booked = booked = self._slots.popleft()
        at = booked - self._offset
        if (wait := at - self.clock()) > 0:
            await self.sleep(wait)
        assert self._state is not None
        self._read_board()
        blocked = self.breaker.is_open and reservation.ticket is None
        if self.cooldown.active or blocked or self.clock() - at > self._state.slack:
            self._report.unused_slots.append(booked)
            reservation.booked = math.nan
            if reservation.probe:
                self._report.probe_done = True
                reservation.probe = False
            await self._gate(reservation)
            return False
        return True

    async def _gate(self, reservation: _Leased) -> None:
        """Wait at the breaker (a probe of an open breaker gets its ticket) and the cooldown."""
        if self.breaker.is_open and reservation.ticket is None:
            reservation.ticket = await self.breaker.admit()
        self._read_board()
        await self.cooldown.wait()

    async def _lease(self, *, slots: int = 0, tokens: float = 0.0, probe: _Leased | None = None) -> float:
        """Lease send times and tokens; the tokens granted (0 when the endpoint has no token
        limit)."""
        returned, self._report.unused_slots = self._report.unused_slots, []
        lease = await self._client.lease(slots, tokens, returned)
        self._apply(lease.state)
        self._slots.extend(lease.slots)
        if lease.probe and probe is not None:
            probe.probe = True
        if lease.tokens > 0:
            self._tokens.append((lease.lease, lease.tokens))
        return lease.tokens

    # -- broadcasts ----------------------------------------------------------------------
    def _apply(self, state: Broadcast) -> None:
        """Take the limiter's clock from any answer; obey a broadcast newer than the last one.

        An answer left the limiter before it arrived here, so ``now - arrival`` is never above
        the true offset, and the quickest answer comes closest: the largest one is kept. With
        the last one instead, every send time moved by that answer's trip (a few to tens of
        milliseconds on a busy machine, different each time), so sends left late by varying
        amounts, which is what the window's margin has to absorb.
        """
        seen = state.now - self.clock()
        self._offset = max(self._offset, seen) if self._synced else seen
        self._synced = True
        if self._state is not None and state.epoch <= self._state.epoch:
            return
        self._state = state
        wait = state.cooldown_until - state.now
        if wait > 0:
            self._pause(wait)
        self.sizer.cap(round(self.max_concurrency * state.concurrency))
        self._resize()
        if state.stopping:
            self.stop_sending()

    def _pause(self, seconds: float) -> None:
        """Start a cooldown here (and on this machine's board) and give back every leased time
        it voids."""
        self.cooldown.extend(seconds)
        if self._board is not None:
            self._board.extend(self.cooldown.until)
        until = self.cooldown.until + self._offset
        while self._slots and self._slots[0] < until:
            self._report.unused_slots.append(self._slots.popleft())

    def _read_board(self) -> None:
        """Obey a pause another worker of this machine wrote on the board."""
        if self._board is not None and (until := self._board.until()) > max(self.cooldown.until, self.clock()):
            self._pause(until - self.clock())

    # -- after a send --------------------------------------------------------------------
    def after_send(self, reservation: Reservation) -> None:
        """The first request of the run is over: tell the limiter at once."""
        if reservation.probe:
            self._report.probe_done = True
            self._flush_now.set()

    def written(self, reservation: Reservation, new_connection: bool) -> None:
        """The request was written to the wire just now: when later than its booked time (a
        busy loop, a worker still starting) its place in the limiter's windows moves to now,
        and a request that opened a connection to a guard past now, as in one process
        (:meth:`~batchjudge.engine.limits.Limits.written`).

        The limiter books a window's sends ahead of time from where the earlier ones stand, so
        a send that reached the server later than booked would otherwise share a window with
        sends booked a window after it: the server counts by arrival. A worker's first request
        can leave seconds after its booking (the worker was still starting).
        """
        assert isinstance(reservation, _Leased)
        guard = NEW_CONNECTION_GUARD_S if new_connection else 0.0
        if self.clock() + guard - (reservation.booked - self._offset) > LATE_WRITE_S:
            self._move(reservation, guard)

    def answered(self) -> None:
        """A reply came in just now: a worker does not read the server's stalls from its reply
        gaps (:mod:`~batchjudge.engine.stalls`). It sees a fraction of the run's replies, and
        on a machine its workers share, its gaps are mostly its own process waiting for a
        core: moving the sends made before such a gap cost the 4-worker test at 100 RPS its
        pace (87-88% in 2 runs of 4, under its 88% floor, against 4 of 4 passing without)
        and drew 429s on CI."""

    def _move(self, reservation: _Leased, after: float) -> None:
        """Tell the limiter the send left ``after`` seconds from now, not at its booked time."""
        now = self.clock() + self._offset + after
        if not math.isnan(reservation.booked) and now > reservation.booked:
            self._report.moved.append((reservation.booked, now))
            reservation.booked = now

    def settle(self, reservation: Reservation, reply: JudgeReply) -> None:
        """Learn the token estimate here; the limiter learns the limits and corrects the
        tokens (only what it needs of the reply travels)."""
        assert isinstance(reservation, _Leased)
        self.estimate.learn(reservation, reply)
        if not math.isnan(reservation.sent_at):
            self.sizer.replied(self.clock() - reservation.sent_at)
        self._resize()
        headers = rate_headers(reply.headers)
        if headers or reservation.lease is not None:
            lean = JudgeReply("", reply.prompt_tokens, reply.completion_tokens, reply.model, headers)
            self._report.settled.append(
                Settled(reservation.booked, reservation.lease, reservation.tokens, reservation.prompt_estimate, lean))

    def _resize(self) -> None:
        """Size the capacity for the pace in force."""
        self.sizer.resize(self._state.pace if self._state is not None else None)
        self.stats.concurrency = int(self.capacity.total_tokens)

    def on_rate_limited(
        self, retry_after: float | None, reservation: Reservation | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Pause here at once, and tell the limiter now (it pauses everyone)."""
        self.stats.rate_limited += 1
        if retry_after:
            self._pause(retry_after)
        sent_at = reservation.booked if isinstance(reservation, _Leased) else self.clock() + self._offset
        tokens = reservation.tokens if reservation is not None else 0.0
        self._report.rate_limited.append(RateLimited(retry_after, sent_at, rate_headers(headers), tokens))
        self._flush_now.set()

    def on_success(self) -> None:
        """Counted for the limiter's next report (a calm stretch speeds everyone back up)."""
        self._report.successes += 1

    # -- talking to the limiter ----------------------------------------------------------
    async def run(self) -> None:
        """Send reports (every ``flush_interval`` seconds, at once after a 429 or the first
        request) and obey broadcasts, until cancelled."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch)
            while True:
                with anyio.move_on_after(self.flush_interval):
                    await self._flush_now.wait()
                self._flush_now = anyio.Event()
                await self.flush()

    async def stop(self, cause: BaseException) -> None:
        """Tell the limiter (hence the driver and every worker) why the whole run must stop."""
        self._report.stopped_by = cause
        await self.flush()

    async def flush(self) -> None:
        """Send what the limiter has not heard yet."""
        if self._report:
            report, self._report = self._report, Report()
            self._apply(await self._client.report(report))

    async def aclose(self) -> None:
        """Give back every unused send time and token, and send the last report."""
        self._report.unused_slots.extend(self._slots)
        self._slots.clear()
        self._report.unused_tokens.extend(self._tokens)
        self._tokens.clear()
        await self.flush()

    async def _watch(self) -> None:
        while True:
            epoch = self._state.epoch if self._state is not None else -1
            self._apply(await self._client.watch(epoch))
