"""How a live source comes back: the reconnect policy, its backoff, and the record of each outage.

A camera or stream that drops is tried again after 0.5 s, then 1, 2, 4 ... seconds, at most 30 s apart,
each wait shortened or lengthened at random by up to ``jitter`` (so a hundred cameras behind one switch
that rebooted do not all knock at the same instant), forever unless ``max_attempts`` bounds the tries in
a row. A stream counts as lost when it errs, ends, or delivers no frame for ``stall_timeout_s`` (a server
that keeps the connection open but sends nothing never errs by itself).

An :class:`Outage` spans from the last frame before the loss to the first frame after it, on the source's
own clock (the frames' ``timestamp``), so frames missing from the outputs are exactly those inside it.

Example:
    >>> policy = ReconnectPolicy(jitter=0.0)
    >>> [policy.delay_s(k) for k in range(8)]
    [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Seconds without a frame after which a live stream counts as stalled (``--stall-timeout``).
DEFAULT_STALL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ReconnectPolicy:
    """When and how often a live source tries again (``--reconnect``, ``--no-reconnect``,
    ``--stall-timeout``).

    Attributes:
        enabled: ``False``: a stream that breaks off ends (``--no-reconnect``: the behaviour before
            reconnecting existed); one that does not open at all fails at once.
        max_attempts: tries in a row before the stream is given up as failed (``None``: forever). Counted
            per outage: a stream that came back starts counting afresh at its next loss.
        initial_s, factor, max_s: the backoff: ``initial_s * factor**k``, at most ``max_s``.
        jitter: each wait is multiplied by a random factor in ``[1 - jitter, 1 + jitter]`` (never above
            ``max_s``).
        stall_timeout_s: no frame for this long counts as a loss.
        open_timeout_s: how long one attempt to open the stream may take.
    """

    enabled: bool = True
    max_attempts: int | None = None
    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.2
    stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    open_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (or None: forever), got {self.max_attempts}")
        if not (self.initial_s > 0 and self.factor >= 1 and self.max_s >= self.initial_s):
            raise ValueError(f"backoff needs initial_s > 0, factor >= 1, max_s >= initial_s; got {self}")
        if not 0 <= self.jitter < 1 or not self.stall_timeout_s > 0 or not self.open_timeout_s > 0:
            raise ValueError(f"need 0 <= jitter < 1 and positive timeouts; got {self}")

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before try ``attempt`` (0-based) of one outage."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        if self.jitter:
            base *= 1.0 + (rng or random).uniform(-self.jitter, self.jitter)
        return min(base, self.max_s)

    def gives_up_after(self, attempts: int) -> bool:
        """Whether ``attempts`` failed tries in a row exhaust the policy."""
        return not self.enabled or (self.max_attempts is not None and attempts >= self.max_attempts)


@dataclass
class Outage:
    """One loss of a live stream, on the source's clock (seconds, as the frames' ``timestamp``).

    Attributes:
        start: timestamp of the last frame before the loss (the time the source was opened if no frame
            had come yet).
        end: timestamp of the first frame after it; ``None`` while the stream is away (or if it never
            came back).
        reason: what happened, in words (``"stalled: no frame for 5.0 s"``, ``"the stream ended"``,
            ``"Connection refused"``); credentials already redacted.
        attempts: tries it took to come back (so far).
        last_try: timestamp of the newest try (how long a stream that never came back was known away).
    """

    start: float
    reason: str
    end: float | None = None
    attempts: int = 0
    last_try: float | None = None

    def seconds(self, now: float | None = None) -> float:
        """Its length: to ``end``; for one still going on, to ``now`` (the current time on the source's
        clock) or, without it, to the newest try."""
        until = self.end if self.end is not None else now if now is not None else self.last_try
        return max(0.0, (until if until is not None else self.start) - self.start)
