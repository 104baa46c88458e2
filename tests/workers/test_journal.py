"""The journal behind progress and log streams: sequence numbers without gaps, resuming after
any sequence, slow readers never skipped, trimmed items reported as missed, readers ending on
close, and many readers at once."""

from __future__ import annotations

import asyncio

import pytest

from devtrip_scale.workers.journal import Journal, Missed


async def collect(journal: Journal[str], after: int = 0, follow: bool = True
                  ) -> list[tuple[int, str] | Missed]:
    return [x async for x in journal.read(after, follow)]


def test_sequences_start_at_one_and_have_no_gaps() -> None:
    j: Journal[str] = Journal()
    assert [j.append(x) for x in "abc"] == [1, 2, 3]
    assert j.first == 1 and j.last == 3
    assert j.items(1) == [(2, "b"), (3, "c")]


@pytest.mark.parametrize("after, expected", [
    (0, [(1, "a"), (2, "b"), (3, "c")]),
    (2, [(3, "c")]),
    (3, []),
], ids=["from-the-start", "resumed-after-2", "resumed-at-the-end"])
def test_a_reader_resumes_after_any_sequence(after: int, expected: list[object]) -> None:
    async def main() -> list[object]:
        j: Journal[str] = Journal()
        for x in "abc":
            j.append(x)
        j.close()
        return list(await collect(j, after))

    assert asyncio.run(main()) == expected


def test_trimmed_items_are_reported_as_missed_before_the_first_kept() -> None:
    async def main() -> list[object]:
        j: Journal[str] = Journal(limit=2)
        for x in "abcde":
            j.append(x)
        j.close()
        return list(await collect(j, after=1))

    got = asyncio.run(main())
    assert got == [Missed(2, 3), (4, "d"), (5, "e")]
    assert isinstance(got[0], Missed) and got[0].count == 2


def test_a_live_reader_gets_new_items_and_ends_on_close() -> None:
    async def main() -> list[object]:
        j: Journal[str] = Journal()
        reader = asyncio.create_task(collect(j))
        await asyncio.sleep(0)
        for x in "xy":
            j.append(x)
            await asyncio.sleep(0.01)
        j.close()
        return list(await asyncio.wait_for(reader, 2))

    assert asyncio.run(main()) == [(1, "x"), (2, "y")]


def test_without_follow_a_reader_ends_at_the_newest_item() -> None:
    async def main() -> list[object]:
        j: Journal[str] = Journal()
        j.append("a")
        return list(await asyncio.wait_for(collect(j, follow=False), 2))

    assert asyncio.run(main()) == [(1, "a")]


def test_a_slow_reader_falls_behind_but_misses_nothing() -> None:
    async def main() -> tuple[list[int], list[int]]:
        j: Journal[int] = Journal()

        async def slow() -> list[int]:
            got = []
            async for item in j.read():
                assert not isinstance(item, Missed)
                got.append(item[1])
                await asyncio.sleep(0.001)
            return got

        fast = asyncio.create_task(collect(j))      # type: ignore[arg-type]
        reader = asyncio.create_task(slow())
        for i in range(200):
            j.append(i)
            if i % 50 == 0:
                await asyncio.sleep(0)
        j.close()
        quick = [x[1] for x in await fast if not isinstance(x, Missed)]
        return quick, await asyncio.wait_for(reader, 10)

    quick, slow = asyncio.run(main())
    assert quick == list(range(200)) and slow == list(range(200))


def test_appending_to_a_closed_journal_is_refused() -> None:
    j: Journal[str] = Journal()
    j.close()
    with pytest.raises(RuntimeError):
        j.append("late")
