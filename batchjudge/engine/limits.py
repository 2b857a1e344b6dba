"""The limits one run's requests share, and how they are found when nobody gives them.

Three windows, as the API counts them (by arrival, per organization):

- requests per second and requests per minute, each a
  :class:`~batchjudge.engine.pacing.WindowPacer` (at most N sends in any window);
- tokens per minute, a :class:`~batchjudge.engine.token_window.TokenWindow` charged before each
  send with the counted prompt tokens plus the expected completion, corrected by the reported
  usage.

Where each limit comes from, in order of authority:

1. **a flag** (``--rps``, ``--rpm``, ``--tpm``) — but a *lower* limit announced by the server
   is obeyed, with a one-time notice (the flag cannot buy more than the organization has);
2. **the server's headers** (:mod:`~batchjudge.engine.ratelimits`): a limit announced on any
   reply is adopted at once, and its *remaining* count is reconciled with what this run sent,
   so that requests made by others on the same organization are accounted for;
3. **an estimate**, when the server announces nothing: at the first 429 the engine counts what
   it sent in the window before the refused request (the server had admitted exactly its
   limit) and paces just under that from then on.

A limit the server announces or shows (an estimate) below ``min_rps`` requests a second (the
run's ``--min-rps``; tokens a minute below ``60 * min_rps``, too few for that many requests of
a single token) is not obeyed: :class:`~batchjudge.errors.LimitTooLowError` says the server's
figure and the run stops, resumable, instead of crawling for hours.

Each window's pace then follows AIMD: a 429 despite the pacing (a new episode) cuts its rate
(1% for a given limit, 3% for an estimate), and every calm ``calm_seconds`` adds back half a
percent, up to the limit; an estimate that has been calm for a minute probes 1% above itself,
since the organization's limit may have risen. A 429 with ``Retry-After`` sets one shared
:class:`Cooldown` that every sender checks right before it sends (after the pacers), so no
request leaves before the server said it may; without ``Retry-After`` the pause is
``default_pause``. Concurrency is a resizable :class:`anyio.CapacityLimiter` sized by
:mod:`~batchjudge.engine.sizing` from the pace in force and the measured latency (Little's law),
under the ``concurrency`` ceiling; repeated episodes lower that ceiling, a calm stretch raises it
back.

An unreachable endpoint opens the shared :class:`~batchjudge.engine.breaker.Breaker`: every
sender waits at the same gate as the cooldown while one probe finds out when it is back.
:meth:`Limits.stop_sending` (a stopping run: SIGTERM, Ctrl-C) makes every later send raise
:class:`SendingStopped`, while :attr:`Limits.sending` counts the requests still on the wire.

Clock and sleep are injectable, so the tests of all of this run on virtual time.

:class:`SendLimits` is what a call asks of its limits (:mod:`~batchjudge.engine.retry`,
:mod:`~batchjudge.engine.judge`); :class:`Limits` is one, and a distributed engine puts limits
shared by many processes behind the same methods (their sends recorded here with
:meth:`Limits.record_sends`).
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio

from batchjudge.core.types import JudgeReply, JudgeRequest
from batchjudge.engine.breaker import ABORT_AFTER_S, Breaker, ProbeTicket
from batchjudge.engine.pacing import WindowPacer
from batchjudge.engine.ratelimits import Announced, Quota, read_rate_headers
from batchjudge.engine.sizing import Sizer
from batchjudge.engine.stalls import StallWatch
from batchjudge.engine.stats import RunStats
from batchjudge.engine.token_window import Charge, TokenWindow
from batchjudge.errors import LimitTooLowError, QuotaExhaustedError

__all__ = [
    "LATE_WRITE_S", "NEW_CONNECTION_GUARD_S", "Clock", "Cooldown", "Limits", "Reservation", "SendLimits",
    "SendingStopped", "Sleep", "Source", "TokenEstimate",
]

Clock = Callable[[], float]
"""Monotonic seconds."""
Sleep = Callable[[float], Awaitable[None]]
"""Wait that many seconds."""
Source = Literal["flag", "server", "estimate"]

logger = logging.getLogger("batchjudge")

_LONG_WAIT = 2.0
"""A Retry-After longer than this points at a per-minute window, not the per-second one."""
LATE_WRITE_S = 0.001
"""A request written this much after its pacer let it go has its send time moved."""
BELOW_FLAG = 0.9
"""A 429 under a flag whose window had admitted fewer than this share of the flag's requests
replaces the flag by that count (an estimate): the flag was above the server's real limit (a
shared organization quota, a wrong figure), and pacing at it sent a 429 storm every second."""
NEW_CONNECTION_GUARD_S = 0.050
"""How much later than its write a request that opened a connection is counted: the server
may accept the connection after the request was written. Against the strict emulator the
arrival stamps of a 400 RPS run's first-second new connections lagged their writes by 0.2 ms
at the median and 19-27 ms at most, and only while the server collected its garbage, as its
reused connections did then (28-47 ms). Counting them from their replies instead (300 ms later
against that server) left a fifth of the second window unused."""


class SendingStopped(Exception):
    """Raised instead of sending once the run is stopping: the row is left for the next run."""


class Cooldown:
    """One shared pause: after a 429 with ``Retry-After``, nobody sends until it expires."""

    def __init__(self, clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self.until = 0.0

    @property
    def active(self) -> bool:
        """Whether a pause is on now."""
        return self._clock() < self.until

    def extend(self, seconds: float) -> None:
        """Pause every sender for ``seconds`` from now (never shortens a pause)."""
        self.until = max(self.until, self._clock() + seconds)

    async def wait(self) -> None:
        """Return once no cooldown is active (re-checking, since it may be extended)."""
        while (remaining := self.until - self._clock()) > 0:
            await self._sleep(remaining)


@dataclass(slots=True)
class Reservation:
    """What one send holds: its token charge and, once sent, its send time."""

    tokens: float
    prompt_estimate: int = 0
    """The request's own prompt count (exact or estimated), to calibrate estimates by usage."""
    charge: Charge | None = None
    sent_at: float = math.nan
    paced_at: float = math.nan
    """When the pacers let it go, as the send log has it (``sent_at`` moves to when it really
    left): what the estimate at a 429 counts before."""
    probe: bool = False
    """The run's first request, which the others wait for and which counts in the windows from
    its reply, not its send (see :meth:`Limits.after_send`)."""
    ticket: ProbeTicket | None = None
    """Held when this send probes an open breaker; handed back with the outcome."""
    retry: bool = False
    """A row's second or later attempt: it goes ahead of first attempts at the pacers."""


class TokenEstimate:
    """What a request is expected to use before its reply says: its prompt count (an estimate
    scaled by what replies reported for earlier estimates) plus the expected completion, both
    learned from the replies."""

    def __init__(self, expected_completion_tokens: float) -> None:
        self.expected_completion = float(expected_completion_tokens)
        self.prompt_ratio = 1.0

    def charge(self, request: JudgeRequest) -> float:
        """Tokens to reserve for ``request`` before it is sent."""
        completion = min(self.expected_completion, float(request.max_tokens))
        return request.prompt_tokens * self.prompt_ratio + completion

    def learn(self, reservation: Reservation, reply: JudgeReply) -> None:
        """Move the estimates toward what ``reply`` reports."""
        self.expected_completion += 0.05 * (reply.completion_tokens - self.expected_completion)
        if reservation.prompt_estimate > 0 and reply.prompt_tokens > 0:
            ratio = reply.prompt_tokens / reservation.prompt_estimate
            self.prompt_ratio += 0.05 * (min(4.0, max(0.25, ratio)) - self.prompt_ratio)


class SendLimits(Protocol):
    """What one call goes through (:mod:`~batchjudge.engine.retry`): take a ``capacity`` slot,
    ``charge`` the request, wait in ``before_send``, send (counted in ``sending``); then
    ``answered`` at any reply, ``on_success`` and ``settle`` after a good one or
    ``on_rate_limited`` after a 429, and ``after_send`` however it ended. ``breaker`` is told
    how each attempt ended; ``clock`` and ``sleep`` time the call and its retries;
    :meth:`stop_sending` stops a run gracefully."""

    max_concurrency: int
    capacity: anyio.CapacityLimiter
    clock: Clock
    sleep: Sleep
    breaker: Breaker
    stopping: bool
    sending: int

    @property
    def expected_completion(self) -> float:
        """Completion tokens a reply is expected to use."""
        ...

    def charge(self, request: JudgeRequest) -> Reservation:
        """What ``request`` must reserve before it is sent."""
        ...

    async def before_send(self, reservation: Reservation) -> None:
        """Return when the request may leave (raise :class:`SendingStopped` once stopping)."""
        ...

    def after_send(self, reservation: Reservation) -> None:
        """The send is over, however it ended."""
        ...

    def written(self, reservation: Reservation, new_connection: bool) -> None:
        """The transport wrote the request just now (see :mod:`batchjudge.core.sending`)."""
        ...

    def answered(self) -> None:
        """A reply, whatever its status, came in just now (see :mod:`~batchjudge.engine.stalls`)."""
        ...

    def settle(self, reservation: Reservation, reply: JudgeReply) -> None:
        """Correct the reservation with what the reply used; learn from its headers."""
        ...

    def on_rate_limited(
        self, retry_after: float | None, reservation: Reservation | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A 429, with the server's wait and headers when it gave them."""
        ...

    def on_success(self) -> None:
        """A reply."""
        ...

    def stop_sending(self) -> None:
        """From now on no request leaves."""
        ...


class _Window:
    """One request window (per second or per minute): its limit, where the limit came from,
    and the AIMD factor applied to it."""

    def __init__(self, name: str, seconds: float, margin: float, clock: Clock, sleep: Sleep,
                 recent: deque[float]) -> None:
        self.name = name
        self._recent = recent
        self.seconds = seconds
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self.limit: float | None = None
        self.source: Source | None = None
        self.flag: float | None = None
        self.factor = 1.0
        self.pacer: WindowPacer | None = None
        self.foreign_after = -math.inf
        """Replies to sends before this time are not reconciled again."""
        self.since = -math.inf
        """When the current limit was set: a 429 for an earlier send says nothing about it."""

    def set(self, limit: float, source: Source) -> None:
        self.limit, self.source = max(limit, 1e-6), source
        if source == "flag":
            self.flag = limit
        self.since = self._clock()
        self._apply()

    def _apply(self) -> None:
        assert self.limit is not None
        count, window = WindowPacer.shape(self.limit * self.factor, self.seconds)
        if self.pacer is None:
            self.pacer = WindowPacer(count, window, margin=self.margin, clock=self._clock, sleep=self._sleep)
            self.pacer.seed(list(self._recent)[-count:])
        else:
            self.pacer.configure(count, window)

    def slow_down(self) -> None:
        """Multiplicative decrease after a 429 despite the pacing."""
        if self.limit is None:
            return
        estimated = self.source == "estimate"
        self.factor = max(0.5 if estimated else 0.9, self.factor * (0.97 if estimated else 0.99))
        self._apply()

    def speed_up(self, probe: bool) -> None:
        """Additive increase after a calm stretch; ``probe`` lets an estimate rise above itself."""
        if self.limit is None:
            return
        if self.factor < 1.0:
            self.factor = min(1.0, self.factor + 0.005)
        elif probe and self.source == "estimate":
            self.limit *= 1.01
        else:
            return
        self._apply()

    def describe(self) -> str:
        if self.limit is None or self.pacer is None:
            return ""
        unit = "s" if self.seconds == 1.0 else "min"
        return f"{self.pacer.rate * self.seconds:.4g}/{unit} {self.source}"


class Limits:
    """The rate, token and concurrency limits one run shares across its senders (a
    :class:`SendLimits`)."""

    def __init__(
        self,
        *,
        concurrency: int,
        rps: float | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        expected_completion_tokens: int = 64,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
        learn: bool = True,
        second_margin: float = 0.010,
        minute_margin: float = 0.5,
        default_pause: float = 1.0,
        adapt_after_429s: int = 3,
        calm_successes: int = 50,
        calm_seconds: float = 10.0,
        stats: RunStats | None = None,
        outage_abort_after: float = ABORT_AFTER_S,
        min_rps: float | None = None,
        sizing: bool = True,
        correct_flags: bool = True,
    ) -> None:
        self.stats = stats if stats is not None else RunStats()
        """Where the pace in force and the 429s are counted for the progress line."""
        self.max_concurrency = concurrency
        self.capacity = anyio.CapacityLimiter(concurrency)
        self.sizer = Sizer(self.capacity, concurrency, clock=clock, fixed=not sizing)
        """Sizes :attr:`capacity` from the pace and the replies' latency, under the ceiling
        (``sizing`` False: the capacity is the ceiling, lowered by 429 episodes)."""
        self.clock = clock
        self.sleep = sleep
        self.cooldown = Cooldown(clock, sleep)
        self.breaker = Breaker(clock=clock, sleep=sleep, abort_after=outage_abort_after)
        self.stopping = False
        """Set by :meth:`stop_sending`: no request leaves any more."""
        self.sending = 0
        """Requests on the wire now (sent, reply not yet in)."""
        self.learn = learn
        self.correct_flags = correct_flags
        """Whether a 429 may replace a flag the server admitted far fewer than (:data:`BELOW_FLAG`)."""
        self.min_rps = min_rps
        """The slowest pace the run accepts from the server (None: any)."""
        self._recent: deque[float] = deque(maxlen=65536)
        """Send times, to seed a pacer learned mid-run and for the estimate at the first 429."""
        self.second = _Window("requests per second", 1.0, second_margin, clock, sleep, self._recent)
        self.minute = _Window("requests per minute", 60.0, minute_margin, clock, sleep, self._recent)
        if rps:
            self.second.set(rps, "flag")
        if rpm:
            self.minute.set(rpm, "flag")
        self.tokens: TokenWindow | None = None
        self.tokens_source: Source | None = None
        self._tokens_flag = tpm
        self._tokens_foreign_at = -math.inf
        self._minute_margin = minute_margin
        if tpm:
            self._set_tokens(tpm, "flag")
        self.estimate = TokenEstimate(expected_completion_tokens)
        self._default_pause = default_pause
        self._noticed: set[str] = set()
        self._recent_429s = 0
        self._adapt_after = adapt_after_429s
        self._calm = 0
        self._calm_successes = calm_successes
        self._calm_seconds = calm_seconds
        self._calm_since = clock()
        self._last_429 = -math.inf
        self._estimated: tuple[_Window, float] | None = None
        """The window this 429 episode set an estimate for, and the send it counted before."""
        self._reported: tuple[object, ...] = ()
        self._per_request = 0.0
        """Tokens a request is charged on average lately (the token window's pace in requests)."""
        self._report()
        self._probing = learn and not (rps or rpm or tpm)
        """With no limit given, the first request goes alone and the others wait for its reply:
        its headers may announce the limits, which costs one latency instead of a 429 storm."""
        self._probe: anyio.Event | None = None
        self.stalls = StallWatch[Reservation](clock, floor=second_margin)
        """The server's stalls, whose held-back sends move to when they ended."""

    @property
    def expected_completion(self) -> float:
        """Completion tokens a reply is expected to use (learned from the replies so far)."""
        return self.estimate.expected_completion

    # -- before a send -------------------------------------------------------------------
    def charge(self, request: JudgeRequest) -> Reservation:
        """What ``request`` must reserve before it is sent (:class:`TokenEstimate`)."""
        tokens = self.estimate.charge(request)
        self._per_request += (tokens - self._per_request) * (0.05 if self._per_request else 1.0)
        return Reservation(tokens, request.prompt_tokens)

    def stop_sending(self) -> None:
        """From now on every :meth:`before_send` raises :class:`SendingStopped`."""
        self.stopping = True

    async def before_send(self, reservation: Reservation) -> None:
        """Wait for the token window, then the minute and second pacers, then the breaker and
        the cooldown.

        The breaker and the cooldown are checked last, right before the send, so no request
        leaves before a ``Retry-After`` expires or while the endpoint is down, however long
        the earlier waits took; the pacers record the real send time. A send that probes an
        open breaker gets its ticket in ``reservation.ticket``.
        """
        if self.stopping:
            raise SendingStopped
        if self._probing:
            if self._probe is None:
                self._probe = anyio.Event()
                reservation.probe = True
            else:
                await self._probe.wait()
        if self.tokens is not None:
            reservation.charge = await self.tokens.acquire(reservation.tokens)
        second, minute = self.second.pacer, self.minute.pacer

        async def gate() -> None:
            if self.breaker.is_open:
                reservation.ticket = await self.breaker.admit()
            await self.cooldown.wait()

        try:
            ahead = reservation.retry  # the outer pacer's line is the only one anybody waits in
            if second is not None and minute is not None:
                sent = await minute.acquire(gate=lambda: _pass(second.acquire(gate=gate)), ahead=ahead)
            elif second is not None or minute is not None:
                sent = await (second or minute).acquire(gate=gate, ahead=ahead)  # type: ignore[union-attr]
            else:
                await gate()
                sent = self.clock()
            if self.stopping:
                raise SendingStopped
        except BaseException:
            self.breaker.release(reservation.ticket)
            reservation.ticket = None
            if reservation.probe and self._probe is not None:  # never sent: let the others go
                self._probing = False
                self._probe.set()
            raise
        reservation.sent_at = reservation.paced_at = sent
        self._recent.append(sent)
        if not reservation.probe:  # the probe counts from its reply
            self.stalls.sent(reservation)

    def record_sends(self, times: Iterable[float]) -> None:
        """Sends made elsewhere under these limits (a shared limiter's workers), at ``times``
        on this clock: counted like this process's own, for a limit learned later and for the
        estimate at the first 429. Their places in the pacers are the caller's business."""
        recent = self._recent
        for at in sorted(times):
            if len(recent) == recent.maxlen:
                recent.popleft()
            bisect.insort(recent, at)

    # -- after a reply -------------------------------------------------------------------
    def after_send(self, reservation: Reservation) -> None:
        """The send is over and what its reply said is learned (or it failed): release the
        senders waiting on the probe."""
        if not reservation.probe:
            self.stalls.done(reservation)
            return
        # The probe opened the run's first connection and may have met a cold server: it
        # reached the server anywhere up to now, so count it as sent now.
        self._move(reservation, self.clock())
        if self._probe is not None:
            self._probing = False
            self._probe.set()

    def written(self, reservation: Reservation, new_connection: bool) -> None:
        """The request was written to the wire just now (see :mod:`batchjudge.core.sending`).

        When that is later than its pacer let it go (the loop was busy), its place in the
        windows moves to now, so the sends paced a window after it wait for when it really
        left; a request that opened a connection moves :data:`NEW_CONNECTION_GUARD_S` past now.
        """
        if reservation.probe:
            return  # counted from its reply
        now = self.clock() + (NEW_CONNECTION_GUARD_S if new_connection else 0.0)
        if now - reservation.sent_at > LATE_WRITE_S:
            self._move(reservation, now)

    def answered(self) -> None:
        """A reply came in just now: when it ends a stall of the server, the sends made during
        the stall count as made now (:mod:`~batchjudge.engine.stalls`)."""
        held = self.stalls.replied()
        if held:
            self.stats.server_stalls += 1
            now = self.clock()
            for reservation in held:
                self._move(reservation, now)

    def _move(self, reservation: Reservation, to: float) -> None:
        self.move_send(reservation.sent_at, to)
        reservation.sent_at = to

    def move_send(self, sent: float, to: float) -> None:
        """Count the send recorded at ``sent`` as made at ``to`` in every request window (it
        left, hence reached the server, later): the sends paced a window after it wait for
        then. Only the pacers move; the send log keeps ``sent``."""
        for window in (self.second, self.minute):
            if window.pacer is not None:
                window.pacer.move(sent, to)

    def settle(self, reservation: Reservation, reply: JudgeReply) -> None:
        """Correct the token charge with the reported usage; learn from the reply's headers."""
        self.estimate.learn(reservation, reply)
        used = reply.prompt_tokens + reply.completion_tokens
        if reservation.charge is not None and self.tokens is not None and used:
            self.tokens.correct(reservation.charge, used)
        if reply.headers and self.learn:
            self.observe(read_rate_headers(reply.headers), reservation)
        if not math.isnan(reservation.sent_at):
            self.sizer.replied(self.clock() - reservation.sent_at)
        self._resize()

    def observe(self, announced: Announced, reservation: Reservation | None = None) -> None:
        """Adopt the limits a reply announced, and reconcile its remaining counts."""
        if announced.empty:
            return
        for window, quota in ((self.second, announced.requests_second), (self.minute, announced.requests_minute)):
            if quota is not None:
                self._adopt(window, quota, reservation)
        if announced.tokens_minute is not None:
            self._adopt_tokens(announced.tokens_minute)
        self._report()
        month = announced.tokens_month
        if month is not None and month.remaining is not None and month.remaining <= 0:
            raise QuotaExhaustedError(
                f"the organization's monthly token budget ({month.limit:,.0f} tokens) is spent; "
                "the same command resumes once it is renewed"
            )

    def _adopt(self, window: _Window, quota: Quota, reservation: Reservation | None) -> None:
        if window.source == "server" and window.limit == quota.limit:
            pass
        elif window.flag is not None and quota.limit >= window.flag:
            pass  # the flag asks for no more than the server allows
        else:
            self._check_floor(quota.limit / window.seconds, f"{quota.limit:g} {window.name} ({quota.header})")
            if window.flag is not None:
                self._notice(window.name, f"the server allows {quota.limit:g} {window.name}, fewer "
                             f"than the {window.flag:g} asked for; pacing at the server's limit")
            window.set(quota.limit, "server")
        self._reconcile(window, quota, reservation)

    def _reconcile(self, window: _Window, quota: Quota, reservation: Reservation | None) -> None:
        """Count as foreign the sends the server saw in the window beyond this run's own."""
        pacer = window.pacer
        if pacer is None or quota.remaining is None or reservation is None or math.isnan(reservation.sent_at):
            return
        sent = reservation.sent_at
        if sent <= window.foreign_after:
            return
        ours = _count_between(self._recent, sent - window.seconds, sent + 1e-9)
        if ours is None:
            return
        server_used = quota.limit - quota.remaining
        # Arrival jitter moves a few sends across the window's edge either way: only more
        # than 2% of the limit (at least one) is taken for someone else's use.
        extra = int(server_used - ours) - max(1, math.ceil(0.02 * quota.limit))
        if extra > 0:
            pacer.add_foreign(extra)
            window.foreign_after = self.clock()

    def _set_tokens(self, limit: float, source: Source) -> None:
        if self.tokens is None:
            self.tokens = TokenWindow(limit, 60.0, margin=self._minute_margin, clock=self.clock, sleep=self.sleep)
        else:
            self.tokens.set_limit(limit)
        self.tokens_source = source

    def _adopt_tokens(self, quota: Quota) -> None:
        flag = self._tokens_flag
        if self.tokens_source == "server" and self.tokens is not None and self.tokens.limit == quota.limit:
            pass
        elif flag is not None and quota.limit >= flag:
            pass
        else:
            self._check_floor(quota.limit / 60.0, f"{quota.limit:g} tokens per minute ({quota.header})")
            if flag is not None:
                self._notice("tokens per minute", f"the server allows {quota.limit:,.0f} tokens per minute, "
                             f"fewer than the {flag:,.0f} asked for; pacing at the server's limit")
            self._set_tokens(quota.limit, "server")
        if self.clock() - self._tokens_foreign_at > 5.0:
            self._reconcile_tokens(quota, over=0.05 * quota.limit)

    def _reconcile_tokens(self, quota: Quota, over: float) -> None:
        """Count as someone else's the tokens the server counted in its window beyond this
        run's own charges, when they come to more than ``over``."""
        if self.tokens is None or quota.remaining is None:
            return
        extra = (quota.limit - quota.remaining) - self.tokens.used
        if extra > over:
            self.tokens.add_foreign(extra)
            self._tokens_foreign_at = self.clock()

    def _check_floor(self, per_second: float, figure: str) -> None:
        """Raise LimitTooLowError when the server's limit (``figure``, at most ``per_second``
        requests a second) is below the run's floor."""
        if self.min_rps is not None and per_second < self.min_rps:
            raise LimitTooLowError(
                f"the server allows {figure}: at most {per_second:.3g} requests a second, below --min-rps "
                f"{self.min_rps:g}; stopped instead of crawling, no row marked failed: run the same command "
                "again once the limit is raised, or pass a lower --min-rps to accept it"
            )

    def _notice(self, key: str, message: str) -> None:
        if key not in self._noticed:
            self._noticed.add(key)
            logger.warning(message)

    # -- 429s and calm -----------------------------------------------------------------
    def on_rate_limited(
        self,
        retry_after: float | None,
        reservation: Reservation | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A 429: pause everyone; learn what the window is; slow down if pacing did not help.

        429s that arrive while an earlier one's pause is still on are the same episode (those
        requests were sent before the pause began) and change nothing else.
        """
        self.stats.rate_limited += 1
        announced = read_rate_headers(headers) if headers and self.learn else Announced()
        same_episode = self.cooldown.active
        self.cooldown.extend(retry_after if retry_after is not None else self._default_pause)
        self._calm = 0
        self._calm_since = self.clock()
        self._last_429 = self._calm_since
        if not announced.empty:
            self.observe(announced, reservation)
        if same_episode:
            self._refine_estimate(reservation)
            return
        self._estimated = None
        refused = _refused_by(announced, reservation, retry_after)
        if refused == "tokens":
            self._tokens_refused(announced.tokens_minute)
            self._report()
            return
        window = self.minute if refused == "minute" else self.second
        sent_at = reservation.sent_at if reservation is not None else math.nan
        estimable = window.source is None or (window.source == "flag" and self.correct_flags)
        estimated = estimable and self.learn and self._estimate(window, reservation)
        if not estimated and not sent_at < window.since:  # sent under the pace in force: too fast
            window.slow_down()
        self._recent_429s += 1
        floor = max(1, self.max_concurrency // 4)
        if self._recent_429s >= self._adapt_after and self.sizer.capped > floor:
            self.sizer.cap(max(floor, math.floor(self.sizer.capped * 0.75)))
            self._recent_429s = 0
        self._resize()
        self._report()

    def _refine_estimate(self, reservation: Reservation | None) -> None:
        """A 429 of the episode that set an estimate, for a request sent before the one the
        estimate counted from: several requests refused together answer in any order, and the
        count before the earliest is the server's limit (counting before a later one took the
        earlier refused ones for admitted: 102 for a limit of 100, and a 429 two seconds on)."""
        if self._estimated is None or reservation is None:
            return
        window, counted_before = self._estimated
        if _send_time(reservation, math.inf) < counted_before and window.source == "estimate":
            self._estimate(window, reservation)
            self._report()

    def _tokens_refused(self, quota: Quota | None) -> None:
        """The token window refused a request: what the server counted beyond this run's own
        charges (someone else's, or completions longer than expected) takes room now, whatever
        its size. The request windows learn nothing from it."""
        if quota is not None:
            self._reconcile_tokens(quota, over=0.0)

    def _estimate(self, window: _Window, reservation: Reservation | None) -> bool:
        """No limit known, or a flag the server did not honour: the server admitted exactly its
        limit in the window before the refused request, so count what this run sent in it. A
        flag is replaced only when that count is below :data:`BELOW_FLAG` of it (a 429 at the
        flag's own pace is the arrival jitter's, and slows the pace instead). True when the
        window's limit is now the estimate."""
        refused_at = _send_time(reservation, self.clock())
        sent = list(self._recent)
        admitted = bisect.bisect_left(sent, refused_at) - bisect.bisect_left(sent, refused_at - window.seconds)
        flag = window.limit if window.source == "flag" else None
        if admitted < 1 or (flag is not None and admitted >= BELOW_FLAG * flag):
            return False
        self._check_floor(admitted / window.seconds, f"about {admitted} {window.name} (it answered 429 "
                          f"after {admitted} in {window.seconds:g} s and announces no limit)")
        window.set(admitted, "estimate")
        self._estimated = (window, refused_at)
        if flag is None:
            self._notice(f"estimate {window.name}", f"rate limited by a server that announces no limit; "
                         f"pacing at an estimated {admitted} {window.name}")
        else:
            self._notice(f"estimate {window.name}", f"rate limited after {admitted} {window.name}, fewer "
                         f"than the {flag:g} asked for; pacing at the server's estimated limit")
        return True

    def on_success(self) -> None:
        """A calm stretch speeds the pacers back up and grows concurrency to the ceiling."""
        self._calm += 1
        now = self.clock()
        if now - self._calm_since >= self._calm_seconds:
            self._calm_since = now
            probe = now - self._last_429 >= 6 * self._calm_seconds
            self.second.speed_up(probe)
            self.minute.speed_up(probe)
            self._report()
        if self._calm >= self._calm_successes:
            self._calm = 0
            self._recent_429s = 0
            if self.sizer.capped < self.max_concurrency:
                self.sizer.cap(self.sizer.capped + max(1, self.max_concurrency // 20))
                self._resize()

    def pace(self) -> float | None:
        """The requests a second in force: the slowest request window, or the token window
        over the tokens a request is charged (None: no limit known)."""
        rates = [w.pacer.rate for w in (self.second, self.minute) if w.pacer is not None]
        if self.tokens is not None and self._per_request > 0:
            rates.append(self.tokens.limit / 60.0 / self._per_request)
        return min(rates) if rates else None

    def _resize(self) -> None:
        """Size the capacity for the pace in force (:class:`~batchjudge.engine.sizing.Sizer`)."""
        if self.sizer.resize(self.pace()):
            self._report()

    def _report(self) -> None:
        """Show the pace in force and the concurrency in the run's counters (the description
        is rebuilt only when something changed: this runs on every reply)."""
        stats = self.stats
        stats.concurrency = int(self.capacity.total_tokens)
        key = (self.second.limit, self.second.factor, self.minute.limit, self.minute.factor,
               None if self.tokens is None else self.tokens.limit, self.sizer.sizing)
        if key == self._reported:
            return
        self._reported = key
        parts = [p for p in (self.second.describe(), self.minute.describe()) if p]
        if self.tokens is not None:
            parts.append(f"{self.tokens.limit:,.0f} tok/min {self.tokens_source}")
        parts.append(self.sizer.sizing.describe())
        stats.limits = ", ".join(parts)


def _send_time(reservation: Reservation | None, otherwise: float) -> float:
    """When ``reservation`` was sent as the send log has it (``otherwise`` when unknown)."""
    if reservation is None:
        return otherwise
    for at in (reservation.paced_at, reservation.sent_at):
        if not math.isnan(at):
            return at
    return otherwise


def _refused_by(
    announced: Announced, reservation: Reservation | None, retry_after: float | None,
) -> Literal["second", "minute", "tokens"]:
    """Which window refused a request, from the 429's headers where they tell: a token
    window with less left than the request costs, or a request window with nothing left.
    Mistral's 429 body says only "Rate limit exceeded", so without headers the wait decides:
    one longer than :data:`_LONG_WAIT` points at a per-minute window.

    Without this, a token-bound run read the token window's 429s as request-window limits
    and paced requests at a made-up "estimate" (e.g. 6/s while the tokens allowed 3/s).
    """
    tokens = announced.tokens_minute
    cost = reservation.tokens if reservation is not None else 0.0
    if tokens is not None and tokens.remaining is not None and tokens.remaining < max(cost, 1.0):
        return "tokens"
    if _spent(announced.requests_second):
        return "second"
    if _spent(announced.requests_minute):
        return "minute"
    return "minute" if retry_after is not None and retry_after > _LONG_WAIT else "second"


def _spent(quota: Quota | None) -> bool:
    """Whether an announced request window has nothing left."""
    return quota is not None and quota.remaining is not None and quota.remaining <= 0


async def _pass(awaitable: Awaitable[float]) -> None:
    """Await a pacer used as another pacer's gate (its send time is the outer one's)."""
    await awaitable


def _count_between(sent: deque[float], start: float, end: float) -> int | None:
    """This run's sends with ``start <= t < end`` (``sent`` in time order), or None when the
    log no longer reaches back to ``start``.

    The log, not the pacer: a pacer keeps only its last ``limit`` sends, and by the time a
    reply comes back the sends made since have pushed out the oldest of its window, which
    then looked like someone else's use of the quota.
    """
    if len(sent) == sent.maxlen and sent and sent[0] >= start:
        return None
    return bisect.bisect_left(sent, end) - bisect.bisect_left(sent, start)
