"""How out of order frames reach a socket: the share that arrives after a higher seq of their topic,
and how many of those a client would have read over HTTP instead of waiting for them.

A client hands a topic's events on in seq order: a frame that jumps ahead is held
until the missing ones arrive, for at most its gap grace (`gapGraceMs`, 250 ms in
both clients), after which it reads the gap with `GET /events`. So a late frame
costs its socket a hold, and one that comes more than the grace after the first
higher seq costs a gap read. Measured by `make bench` (scripts/lab/bench.py,
StackBench.ordering) on real sockets, with the module's delivery turns off and on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

GAP_GRACE_SECONDS = 0.25  # the clients' default gapGraceMs / gap_grace


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds, any clock shared by the sockets
    topic: str
    seq: int


@dataclass(frozen=True)
class Disorder:
    frames: int
    late: int  # arrived after a higher seq of their topic on the same socket
    gap_reads: int  # of those, arrived more than the gap grace after it: a client would have read them over HTTP

    @property
    def late_share(self) -> float:
        return self.late / self.frames if self.frames else 0.0


def disorder(sockets: Iterable[Sequence[Arrival]], grace: float = GAP_GRACE_SECONDS) -> Disorder:
    """Late frames and would-be gap reads over every socket's arrivals (each in the order they came)."""
    frames = late = gap_reads = 0
    for arrivals in sockets:
        seen: dict[str, list[Arrival]] = {}
        for arrival in arrivals:
            frames += 1
            ahead = [other.at for other in seen.get(arrival.topic, []) if other.seq > arrival.seq]
            if ahead:
                late += 1
                if arrival.at - min(ahead) > grace:  # the client stopped waiting and read the gap
                    gap_reads += 1
            seen.setdefault(arrival.topic, []).append(arrival)
    return Disorder(frames, late, gap_reads)
