"""A watch as the producer of an ack-mode shared stream (Airflow 3.3+): its mark is written once its events are stored.

The triggerer builds the producer from the trigger's kwargs alone, while the watcher's mark
lives in the asset state store that the triggerer gave the watcher's instance. So the
stream's first item is a :class:`MarkStoreRequest`: the watcher's filter answers it with its
:class:`~airflow_provider_census.triggers.sync_watch.MarkStore`, and the producer polls only
then. What passes between them passes through the stream that joins them, nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.hooks.census_async import CensusAsyncHook
from airflow_provider_census.runs import RunSummary
from airflow_provider_census.triggers.sync_watch import MarkStore, SyncWatch, WatchedSync, polls
from airflow_provider_census.triggers.watch_mark import WatchMark
from airflow_provider_census.version_compat import SharedStreamProducer

if TYPE_CHECKING:
    from airflow.triggers.shared_stream import AdvanceItem


@dataclass(frozen=True)
class MarkStoreRequest:
    """The stream's first item: the producer asks its watcher where the watch's mark is kept."""

    answer: asyncio.Future[MarkStore]

    def give(self, marks: MarkStore) -> None:
        """Answer with the watcher's mark store; a producer that stopped waiting is no longer told."""
        if not self.answer.done():
            self.answer.set_result(marks)


class AckedWatch(SharedStreamProducer):
    """One watch as a shared stream in ack mode (Airflow 3.3+): its mark is written once its events are stored.

    After the :class:`MarkStoreRequest`, each item is a fired run's summary (``None`` for a
    mark alone) with the mark covering it and everything yielded before it. The triggerer
    hands the summary to the watcher's filter, stores the event the filter makes in the
    metadata database, and only then calls :meth:`advance` with the items, in the order
    they were yielded.
    """

    def __init__(self, trigger: WatchedSync) -> None:
        self.trigger = trigger
        self.hook = CensusAsyncHook(trigger.census_conn_id, retry_policy=ONE_TRY)
        self.watch: SyncWatch | None = None
        self.lost_one = False

    async def open_stream(self) -> AsyncIterator[tuple[RunSummary | MarkStoreRequest | None, WatchMark | None]]:
        request = MarkStoreRequest(asyncio.get_running_loop().create_future())
        yield request, None
        self.watch = SyncWatch(self.trigger, self.hook, await request.answer)
        async for fired in polls(self.watch):
            for item in fired:
                yield item
            if self.watch.mark is not None and self.watch.mark != self.watch.saved:
                yield None, self.watch.mark

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Write the mark of the last item, up to the first item whose event Airflow did not store.

        After such an item no mark is written again: the triggerer fails the watcher (the item
        timed out or overflowed), and the restarted watcher fires that run again.
        """
        mark = None
        for item in batch:
            self.lost_one = self.lost_one or not item.outcome.is_clean
            if self.lost_one:
                break
            if item.broker_payload is not None:  # None: the MarkStoreRequest
                mark = item.broker_payload
        if self.watch is not None:
            await self.watch.save_mark(mark)

    async def aclose(self) -> None:
        await self.hook.aclose()
