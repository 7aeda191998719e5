"""Allocator snapshots on a compacted Kafka topic, one partition per commands partition.

A snapshot of commands partition ``p`` reflecting input offset ``o`` (the core's
``next_offset``) is written to partition ``p`` of the snapshots topic as

- chunks, key ``"p/o/i"`` (``i`` = 0..n-1), each at most ``chunk_bytes`` of the
  snapshot bytes (a large state does not fit in one Kafka message);
- then a manifest, key ``"p"``: msgpack ``{"v", "offset", "chunks", "size", "sha256"}``;
- then tombstones for the chunks of the snapshot this one replaces.

The manifest comes last, so a writer that dies half-way leaves the previous
snapshot usable; compaction keeps the newest manifest per partition and drops
tombstoned chunks. Reading takes the newest manifest whose offset is at most
the committed offset and whose chunks are all there with the right digest;
anything else (no snapshot, a torn or foreign one) means replaying from an
older snapshot or from the log start — slower, never wrong, since a snapshot
at offset ``o`` is a pure function of the first ``o`` records.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import msgpack
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from allocator.errors import AllocatorError
from fairq import kafkaclient
from fairq.config import Kafka
from fairq.topics import TopicError, create_topics, snapshot_topic_configs

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1
READ_POLL_MS = 1000


class SnapshotStoreError(AllocatorError):
    """The snapshots topic could not be created, read or written."""


@dataclass(frozen=True, slots=True)
class Manifest:
    offset: int
    chunks: int
    size: int
    sha256: str

    def pack(self) -> bytes:
        m: dict[str, int | str] = {"v": MANIFEST_VERSION, "offset": self.offset}
        m |= {"chunks": self.chunks, "size": self.size, "sha256": self.sha256}
        return msgpack.packb(m, use_bin_type=True)  # type: ignore[no-any-return]

    @classmethod
    def unpack(cls, data: bytes) -> Manifest | None:
        """The manifest in ``data``, or None when it is not one of this version."""
        try:
            m = msgpack.unpackb(data, raw=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            return None
        if not isinstance(m, dict) or m.get("v") != MANIFEST_VERSION:
            return None
        offset, chunks, size, sha = (m.get(k) for k in ("offset", "chunks", "size", "sha256"))
        if not (isinstance(offset, int) and isinstance(chunks, int) and isinstance(size, int)):
            return None
        if not isinstance(sha, str):
            return None
        return cls(offset, chunks, size, sha)

    def chunk_keys(self, partition: int) -> list[bytes]:
        return [f"{partition}/{self.offset}/{i}".encode() for i in range(self.chunks)]


def manifest_key(partition: int) -> bytes:
    return str(partition).encode()


class SnapshotStore:
    """Reads and writes the snapshots of commands partitions on ``topic``."""

    def __init__(self, kafka: Kafka, topic: str, chunk_bytes: int) -> None:
        self.kafka = kafka
        self.topic = topic
        self.chunk_bytes = chunk_bytes
        self._ensured = False
        self._written: dict[int, Manifest] = {}  # partition -> newest snapshot known here

    async def ensure_topic(self, partitions: int) -> None:
        """Create the compacted topic with ``partitions`` partitions unless it exists
        (``fairq topics`` creates it beside the booking topics with their replication;
        this is for a broker where nobody did: one replica)."""
        if self._ensured:
            return
        topic = NewTopic(self.topic, partitions, 1, topic_configs=snapshot_topic_configs(1))
        try:
            await create_topics(self.kafka, [topic])
        except TopicError as e:
            raise SnapshotStoreError(str(e)) from e
        self._ensured = True

    async def latest(self, partition: int, max_offset: int) -> tuple[Manifest, bytes] | None:
        """The newest whole snapshot of ``partition`` with offset <= ``max_offset``."""
        manifests, chunks = await self._read(partition)
        for m in sorted(manifests.values(), key=lambda m: m.offset, reverse=True):
            if m.offset > max_offset:
                continue
            parts = [chunks.get(k) for k in m.chunk_keys(partition)]
            data = b"".join(p for p in parts if p is not None)
            if None in parts or len(data) != m.size or await _digest(data) != m.sha256:
                logger.warning("snapshot %d@%d is incomplete; trying older", partition, m.offset)
                continue
            self._written[partition] = m
            return m, data
        return None

    async def _read(self, partition: int) -> tuple[dict[int, Manifest], dict[bytes, bytes]]:
        tp = TopicPartition(self.topic, partition)
        consumer = kafkaclient.consumer(self.kafka)
        manifests: dict[int, Manifest] = {}
        chunks: dict[bytes, bytes] = {}
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=READ_POLL_MS)
                for r in batch.get(tp, []):
                    _collect(partition, r.key, r.value, manifests, chunks)
        except KafkaError as e:
            raise SnapshotStoreError(f"reading snapshots of partition {partition}: {e}") from e
        finally:
            await kafkaclient.stop(consumer)
        return manifests, chunks

    async def write(
        self, producer: AIOKafkaProducer, partition: int, offset: int, data: bytes
    ) -> Manifest:
        """Store ``data`` as the snapshot of ``partition`` at ``offset``; returns once acked.

        Hashing and chunking hundreds of megabytes does not hold up the event loop: the
        digest is computed in a thread, and each chunk is copied out only when sent.
        """
        step = self.chunk_bytes
        chunks = max(1, -(-len(data) // step))
        m = Manifest(offset, chunks, len(data), await _digest(data))
        view = memoryview(data)
        keyed = (
            (key, bytes(view[i * step : (i + 1) * step]))
            for i, key in enumerate(m.chunk_keys(partition))
        )
        await self._send_all(producer, partition, keyed)
        await self._send_all(producer, partition, [(manifest_key(partition), m.pack())])
        old = self._written.get(partition)
        if old is not None and old.offset != offset:
            await self._send_all(
                producer, partition, [(k, None) for k in old.chunk_keys(partition)]
            )
        self._written[partition] = m
        return m

    async def _send_all(
        self,
        producer: AIOKafkaProducer,
        partition: int,
        records: Iterable[tuple[bytes, bytes | None]],
    ) -> None:
        try:
            futures = [
                await producer.send(self.topic, value, key=key, partition=partition)
                for key, value in records
            ]
            await asyncio.gather(*futures)
        except KafkaError as e:
            raise SnapshotStoreError(f"writing a snapshot of partition {partition}: {e}") from e


def _collect(
    partition: int,
    key: bytes | None,
    value: bytes | None,
    manifests: dict[int, Manifest],
    chunks: dict[bytes, bytes],
) -> None:
    """Fold one snapshots-topic record into the manifests and chunks seen so far."""
    if key is None:
        return
    if key == manifest_key(partition):
        m = Manifest.unpack(value) if value is not None else None
        if m is not None:
            manifests[m.offset] = m
    elif value is None:
        chunks.pop(key, None)
    else:
        chunks[key] = value


async def _digest(data: bytes) -> str:
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
