"""The disorder figures make bench reports: late frames, and those a client would read over HTTP."""

from scripts.lab.ordering import Arrival, Disorder, disorder


def test_frames_in_seq_order_are_not_late():
    socket = [Arrival(0.01 * n, "group:a", n) for n in range(1, 31)]

    assert disorder([socket, socket]) == Disorder(frames=60, late=0, gap_reads=0)


def test_a_frame_after_a_higher_seq_is_late_and_costs_a_gap_read_only_past_the_grace():
    socket = [
        Arrival(0.00, "all", 2),  # 1 is missing from here on
        Arrival(0.10, "all", 1),  # late, within the grace: held, handed on in order
        Arrival(0.20, "all", 4),
        Arrival(0.30, "user:1", 1),  # another topic: its own order
        Arrival(0.50, "all", 3),  # late by 0.3 s after 4: the client had read it over HTTP
    ]

    result = disorder([socket], grace=0.25)

    assert (result.frames, result.late, result.gap_reads) == (5, 2, 1)
    assert result.late_share == 0.4
