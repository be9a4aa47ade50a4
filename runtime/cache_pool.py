"""The key/value caches of many conversations in one array per (modality, cache): a row per
conversation (batched turns, docs/ARCHITECTURE.md §7b). A batched step graph is fed the whole
pools, in place, and the rows of the conversations in its batch; each Conversation keeps views
of its row, so its own single-stream turns (and cache rebuilds) write the very same memory.

    pool = CachePool(runtime, max_rows=64, max_context=64)
    conv = Conversation(runtime, 64, pool=pool)   # takes a row; conv.detach() gives it back

Pools are allocated zeroed at max_rows (calloc: pages of rows never used cost no memory) and
never grow, so a view stays valid for as long as its conversation holds the row.
"""

from __future__ import annotations

import threading

import numpy as np

from .errors import ConversationError, OverloadedError
from .families.base import CONTEXT
from .patterns import MODALITIES


class CachePool:
    def __init__(self, runtime, max_rows: int, max_context: int):
        bundle = runtime.bundle
        n, shape = runtime.family.cache_layout(bundle.model["config"])
        self.max_rows, self.max_context = max_rows, max_context
        full = tuple(max_context if d == CONTEXT else d for d in shape)
        dtype = np.dtype(bundle.float_dtype)
        # m -> ONE array [n, max_rows, *cache shape] (e.g. MoMKE [2Q, rows, 3 experts, H, C, d/H]) so
        # that a batch's new slots of all n caches are one indexed write; the graph is fed its n
        # leading-axis views [max_rows, ...], each contiguous (no copy)
        self._stacked = {m: np.zeros((n, max_rows, *full), dtype) for m in MODALITIES}
        self.pools = {m: list(a) for m, a in self._stacked.items()}  # m -> n pools [max_rows, *cache shape]
        # [n, rows, *shape] indexed by (all caches, rows [S'], axes before the slot, slots [S']): with
        # axes between the two index arrays the selection is laid out [S', n, *slot] = new's layout
        self._lead = (slice(None),) * shape.index(CONTEXT)
        self._free = list(range(max_rows - 1, -1, -1))  # lowest row first
        self._lock = threading.Lock()

    def acquire(self) -> int:
        """A free row, zeroed slots not guaranteed (a conversation reads only the slots it filled)."""
        with self._lock:
            if not self._free:
                raise OverloadedError(f"cache pool full: {self.max_rows} conversations hold rows")
            return self._free.pop()

    def release(self, row: int) -> None:
        with self._lock:
            if row in self._free or not 0 <= row < self.max_rows:
                raise ConversationError(f"cache pool row {row} is not held: released twice or never acquired")
            self._free.append(row)

    def views(self, row: int) -> dict[str, list[np.ndarray]]:
        """m -> its n caches of this row (contiguous views, written in place)."""
        return {m: [p[row] for p in pools] for m, pools in self.pools.items()}

    def write_slots(self, m: str, rows: list[int], slots: list[int], new) -> None:
        """Modality m's new slots of several rows at once, in place: row rows[j] gets new[j]
        [n, *slot] at slot slots[j] of each of its n caches (one indexed write for all of them)."""
        if not self._lead:  # index arrays side by side: numpy keeps the selection in place, [n, S', *slot]
            new = np.moveaxis(new, 1, 0)
        self._stacked[m][(slice(None), np.asarray(rows), *self._lead, np.asarray(slots))] = new

    @property
    def rows_held(self) -> int:
        with self._lock:
            return self.max_rows - len(self._free)
