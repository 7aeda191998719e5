"""Taking partition snapshots without stalling the allocator's loop.

Dumping a core of millions of slots takes seconds of CPU, and writing the
hundreds of megabytes to the snapshots topic takes more; the loop cannot apply
commands to a core while it is being dumped. So the dump is made in a forked
child process (as Redis does for BGSAVE): ``os.fork`` gives the child a
copy-on-write image of the core exactly as it is between two records, the child
dumps it and writes the bytes to a pipe, and the loop goes on at once. The bytes
are read and written to the store by a background task. The loop is held only
for the fork itself (tens of milliseconds for gigabytes); the price is memory,
since pages the child touches are copied, up to the size of the state.

A snapshot at offset ``o`` is a pure function of the first ``o`` records, so it
may be written before or after those records' offsets are committed; the store is
only read for snapshots at or before the committed offset. One snapshot of a
partition is made at a time.

When is a snapshot due: after ``snapshot_every_records`` records or
``snapshot_every_s`` of log time since the last one (settings); a state whose
last snapshot was larger than ``snapshot_every_records`` x
``SNAPSHOT_BYTES_PER_RECORD`` stretches both in proportion. Snapshotting then
costs a bounded share of the work, and a restart replays after the snapshot
about as long as it takes to load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import struct
import threading
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

import allocator.snapshot  # noqa: F401 - imported before any fork, used by Allocator.snapshot
from allocator.core import Allocator
from allocator.errors import AllocatorError
from allocator.metrics import AllocatorMetrics
from allocator.snapshotstore import SnapshotStore, SnapshotStoreError
from fairq.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

SNAPSHOT_BYTES_PER_RECORD = 512  # state bytes per record of the interval before it stretches
STOP_WAIT_S = 30.0  # how long a stopping allocator waits for snapshots being written
_SIZE = struct.Struct("!Q")  # the child writes the size first, then the bytes


class DumpError(AllocatorError):
    """A snapshot could not be dumped (the child failed, or could not be started)."""


def _child(core: Allocator, fd: int) -> None:
    """In the forked child: dump ``core``, write it to ``fd``, exit without returning."""
    code = 1
    try:
        if threading.current_thread() is threading.main_thread():
            # The parent's event loop wakes up on signals through a descriptor the child
            # shares; a signal meant for the child must not reach it.
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        gc.disable()  # the collector would touch (and so copy) every object of the state
        data = core.snapshot()
        with open(fd, "wb", closefd=True) as out:
            out.write(_SIZE.pack(len(data)))
            out.write(data)
        code = 0
    except BaseException:
        logger.exception("dumping a snapshot in the child failed")
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    """The bytes the child wrote to ``fd`` (blocking; run in a thread)."""
    with open(fd, "rb", closefd=True) as f:
        head = f.read(_SIZE.size)
        if len(head) != _SIZE.size:
            raise DumpError("the child wrote no snapshot")
        (size,) = _SIZE.unpack(head)
        data = f.read(size)
    if len(data) != size:
        raise DumpError(f"the child wrote {len(data)} of {size} snapshot bytes")
    return data


class Dump:
    """A snapshot of one core being dumped: ``start`` forks, ``result`` waits for the bytes."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd

    @classmethod
    def start(cls, core: Allocator) -> Dump:
        """Fork a child dumping ``core`` as it is now; returns at once."""
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(read_fd)
            os.close(write_fd)
            raise DumpError(f"cannot fork to dump a snapshot: {e}") from e
        if pid == 0:
            os.close(read_fd)
            _child(core, write_fd)  # never returns
        os.close(write_fd)
        return cls(pid, read_fd)

    async def result(self) -> bytes:
        """The snapshot bytes, once the child has written them and exited."""
        try:
            data = await asyncio.to_thread(_read_all, self.fd)
        except DumpError as e:
            status = await asyncio.to_thread(self._reap)
            raise DumpError(f"{e}; the child exited with status {status}") from e
        except BaseException:  # cancelled, or the pipe failed: the child is not wanted
            self.kill()
            await asyncio.to_thread(self._reap)
            raise
        status = await asyncio.to_thread(self._reap)
        if status != 0:
            raise DumpError(f"the snapshot child exited with status {status}")
        return data

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def _reap(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


@dataclass(frozen=True, slots=True)
class Cadence:
    """When snapshots are due (see the module docstring)."""

    every_records: int  # 0: never by count
    every_ms: float  # 0: never by time

    def due(self, since_records: int, since_ms: int, last_bytes: int) -> bool:
        if since_records <= 0:
            return False
        stretch = 1.0
        if self.every_records:
            stretch = max(1.0, last_bytes / (self.every_records * SNAPSHOT_BYTES_PER_RECORD))
            if since_records >= self.every_records * stretch:
                return True
        return bool(self.every_ms) and since_ms >= self.every_ms * stretch


@dataclass(slots=True)
class Last:
    """The last snapshot of a partition started here (or the one it was restored from)."""

    offset: int
    now_ms: int
    size: int


class Snapshotter:
    """Snapshots of the cores of this process's partitions, written in the background."""

    def __init__(
        self,
        store: SnapshotStore,
        producer: AIOKafkaProducer,
        cadence: Cadence,
        metrics: AllocatorMetrics,
    ) -> None:
        self.store = store
        self.producer = producer
        self.cadence = cadence
        self.metrics = metrics
        self._last: dict[int, Last] = {}
        self._running: dict[int, asyncio.Task[None]] = {}

    def taken_over(self, partition: int, offset: int, now_ms: int, size: int) -> None:
        """A partition was taken over from a snapshot at ``offset`` (0: from the log start)."""
        self._last[partition] = Last(offset, now_ms, size)

    def forget(self, partition: int) -> None:
        """A partition was revoked; a snapshot of it being written still completes."""
        self._last.pop(partition, None)

    def due(self, partition: int, core: Allocator) -> bool:
        if partition in self._running:
            return False
        last = self._last.get(partition, Last(0, 0, 0))
        return self.cadence.due(
            core.next_offset - last.offset, core.now_ms - last.now_ms, last.size
        )

    def take(self, partition: int, core: Allocator) -> float:
        """Start a snapshot of ``core`` as it is now; returns the seconds the loop was held.

        Call it between records, with nothing else changing the core.
        """
        started = time.perf_counter()
        try:
            job = Dump.start(core)
        except DumpError as e:
            self.metrics.snapshot_failures_total.inc()
            logger.warning("snapshot of partition %d not started: %s", partition, e)
            return time.perf_counter() - started
        before = self._last.get(partition)
        mine = Last(core.next_offset, core.now_ms, before.size if before else 0)
        self._last[partition] = mine
        self._running[partition] = asyncio.create_task(
            self._write(partition, mine, before, job), name=f"snapshot-{partition}@{mine.offset}"
        )
        pause_s = time.perf_counter() - started
        self.metrics.snapshot_pause_seconds.observe(pause_s)
        return pause_s

    async def _write(self, partition: int, mine: Last, before: Last | None, job: Dump) -> None:
        try:
            data = await job.result()
            await self.store.write(self.producer, partition, mine.offset, data)
        except (DumpError, SnapshotStoreError) as e:
            self.metrics.snapshot_failures_total.inc()
            logger.warning(
                "snapshot of partition %d at %d not written: %s", partition, mine.offset, e
            )
            if self._last.get(partition) is mine and before is not None:
                self._last[partition] = before  # due again at once
            return
        finally:
            self._running.pop(partition, None)
        mine.size = len(data)
        self.metrics.snapshots_total.inc()
        logger.info(
            "partition %d snapshotted at offset %d (%d bytes)", partition, mine.offset, len(data)
        )

    async def close(self, wait_s: float = STOP_WAIT_S) -> None:
        """Let the snapshots being written finish (for at most ``wait_s``), then stop."""
        running = list(self._running.values())
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=wait_s)
        await cancel_and_wait(late)
