"""Reads of the archive that the ledger needs once Redis is trimmed: entries, leaf hashes and
payloads below the trim point, and the erasure of an archived payload.

The ledger (`ledger/log.py`) keeps only the entries the archiver has not yet copied; proofs and
entry reads for older indexes come from here, so they keep working after trimming (DESIGN.md §5).
"""

from __future__ import annotations

import asyncio
from typing import Any

from controlplane import jsontext
from controlplane.archive.archiver import (
    archived_leaf_hashes,
    erase_payload,
    payload_path,
    read_archived_checkpoint,
)
from controlplane.archive.storage import ArchiveStorage
from controlplane.archive.tiles import TILE_WIDTH, decode_entry_bundle, entries_path
from controlplane.errors import NotFound


class ArchiveReader:
    def __init__(self, storage: ArchiveStorage) -> None:
        self._storage = storage

    async def size(self) -> int:
        """How many entries the archive holds (its checkpoint's size; 0 before the first)."""
        checkpoint = await asyncio.to_thread(read_archived_checkpoint, self._storage)
        return 0 if checkpoint is None else checkpoint.size

    async def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return await archived_leaf_hashes(self._storage, start, end)

    async def entry(self, index: int) -> bytes:
        """Entry `index` from its entry bundle. Raises `NotFound` beyond the archive."""
        size = await self.size()
        if not 0 <= index < size:
            raise NotFound(f"the ledger has no entry {index}")
        number = index // TILE_WIDTH
        full = (number + 1) * TILE_WIDTH <= size
        path = entries_path(number, None if full else size - number * TILE_WIDTH)
        data = await asyncio.to_thread(self._storage.read, path)
        return decode_entry_bundle(data)[index % TILE_WIDTH]

    async def payload(self, index: int) -> bytes | None:
        try:
            data = await asyncio.to_thread(self._storage.read, payload_path(index))
        except NotFound:
            return None
        payloads: Any = jsontext.loads(data)
        value = payloads.get(str(index)) if isinstance(payloads, dict) else None
        return None if value is None else jsontext.dumps(value)

    async def erase_payload(self, index: int) -> bool:
        return await erase_payload(self._storage, index)
