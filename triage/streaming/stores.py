"""A RocksDB table store that also accepts writes made outside a stream event.

Faust's RocksDB store picks the partition database of a write from the current
stream event and asserts there is one, even for tables that partition by key
(``use_partitioner=True``). Our worker persists states after their outputs are
delivered, from its flush, where there is no current event. For a key-
partitioned table the partition follows from the key, so we compute it.
"""

from __future__ import annotations

from typing import Any

from faust.stores import STORES
from faust.stores.rocksdb import Store
from faust.streams import current_event

from triage.streaming.shell import partition_of

SCHEME = "triage-rocksdb"


class KeyPartitionedRocksStore(Store):
    """Faust's RocksDB store, partitioning writes by key when no event is current."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        event = current_event()
        if event is not None:
            partition: int = event.message.partition
        else:
            partition = partition_of(key, self.table.partitions or 1)
        db: Any = self._db_for_partition(partition)
        self._key_index[key] = partition
        db.put(key, value)


def register() -> None:
    """Make ``triage-rocksdb://`` a Faust store URL (idempotent)."""
    STORES.aliases[SCHEME] = f"{__name__}:KeyPartitionedRocksStore"


def store_url(url: str) -> str:
    """The Faust store URL for a configured one: ``rocksdb://`` gets our store."""
    if url.startswith("rocksdb://"):
        register()
        return SCHEME + url[len("rocksdb") :]
    return url
