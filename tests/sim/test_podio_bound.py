"""The data plane's log book keeps the logs of at most MAX_STOPPED stopped pods: pods killed
all day do not grow its memory; a restarted pod keeps its previous incarnation."""

from __future__ import annotations

from k3dtui.sim.podio import MAX_STOPPED, LogBook


def test_stopped_pods_logs_are_bounded_and_a_restart_keeps_its_previous() -> None:
    book = LogBook()
    book.start("live", 1, 1000)
    for n in range(MAX_STOPPED * 3):
        book.start(f"gone-{n}", 1, 2000 + n)
        book.current(f"gone-{n}").write("x" * 1000)  # type: ignore[union-attr]
        book.stop(f"gone-{n}")
    kept = [n for n in range(MAX_STOPPED * 3) if book.current(f"gone-{n}") is not None]
    assert kept == list(range(MAX_STOPPED * 2, MAX_STOPPED * 3))  # the newest MAX_STOPPED
    assert book.current("live") is not None  # a running pod is never forgotten
    # a crash: stopped, then started again: its previous incarnation is there
    book.stop("live")
    book.start("live", 1, 1001)
    assert book.previous("live") is not None and book.current("live").number == 1  # type: ignore[union-attr]
    for n in range(MAX_STOPPED * 2):
        book.start(f"more-{n}", 1, 3000 + n)
        book.stop(f"more-{n}")
    assert book.current("live") is not None
