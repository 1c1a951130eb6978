"""The duplicate filter's two generations, and streak flushes stamped with their own deadline:
pieces the engine tests pass through without pinning down (a mutation of either broke nothing)."""

from __future__ import annotations

from bot.events.dedup import Deduper
from bot.events.streaks import StreakFolder
from bot.testing import gift


def test_an_id_is_still_a_duplicate_once_its_generation_became_the_older_one():
    d = Deduper(window=4)  # generations of 2 ids
    assert not d.is_duplicate("a") and not d.is_duplicate("b")  # "a", "b" now the older generation
    assert not d.is_duplicate("c")  # the newer generation holds only "c"
    assert d.is_duplicate("a") and d.is_duplicate("b")  # found in the older one
    assert d.dropped == 2


def test_the_older_generation_is_forgotten_after_two_turns_so_memory_stays_bounded():
    d = Deduper(window=4)
    for x in "abcd":  # a, b: turned out of the newer, then c, d push them out of the older
        assert not d.is_duplicate(x)
    assert not d.is_duplicate("a")  # forgotten: memory holds at most ``window`` ids
    assert d.is_duplicate("c") and d.is_duplicate("d")


def test_streaks_flushed_late_are_each_stamped_with_their_own_deadline_not_the_flush_time():
    folder = StreakFolder(silence_ms=5_000)
    folder.fold(gift(1_000, "Rose", 1, count=3, who="ana", gift_type=1), 1_000)
    folder.fold(gift(2_500, "Rose", 1, count=7, who="bo", gift_type=1), 2_500)
    assert folder.next_deadline() == 6_000
    flushed = folder.flush_due(60_000)  # (a replay or report that looks only much later)
    assert [(e.user.nickname.lower(), e.ts, e.data["count"], e.data["flushed"]) for e in flushed] == [
        ("ana", 6_000, 3, True), ("bo", 7_500, 7, True)]
    assert folder.flush_due(60_000) == [] and folder.next_deadline() is None


def test_flush_due_leaves_streaks_whose_deadline_has_not_come():
    folder = StreakFolder(silence_ms=5_000)
    folder.fold(gift(1_000, "Rose", 1, count=1, who="ana", gift_type=1), 1_000)
    folder.fold(gift(4_000, "Rose", 1, count=1, who="bo", gift_type=1), 4_000)
    [first] = folder.flush_due(8_999)
    assert first.ts == 6_000 and folder.next_deadline() == 9_000
