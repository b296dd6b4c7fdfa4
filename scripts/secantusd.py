"""SecantusDB, the embedded MongoDB of `make run`, the tests and the bench, started with
three fixes to its 0.7.0b3: two keep the cost of a write from growing with the data, one
takes a lock off every command:

- **A filter with an `_id` equality beside other predicates is a point lookup.** Its
  write paths scanned the whole collection for any filter with a top-level operator, and
  `findAndModify` always writes with `{_id, $and: [query]}`, so every claim and status
  change read every job ever stored (66 ms a `findAndModify` at 10,000 jobs, against
  1.2 ms for an `update_one` by `_id`). The candidates of the primary key are still
  matched against the whole filter by the caller, as with every index lookup.
- **The retryable-write registry is pruned from its oldest end.** It scanned (and past
  10,000, sorted) every write of the last 30 minutes on each write; records are kept in
  the order they were made, so the expired ones are at the front.
- **The profiler's settings are kept in memory.** Every command read them from their table
  under the storage's one lock (a fifth of the server's samples with 2,000 jobs in flight);
  they change only through `set_profile`, which now drops the copy (read again by the next command).

A real MongoDB needs none of them; they are for SecantusDB's maintainers. Usage is the same
as `secantusd-py`: `python scripts/secantusd.py --port 27017 --storage-path .data/mongo`.
"""

import sys
import threading
from typing import Any

from secantus import storage, transactions


def point_lookup_first(original: Any) -> Any:
    """`Storage._try_index_id_keys` that serves an `_id` point lookup whatever else the
    filter holds (the original did so only for a filter of `_id` alone)."""

    def _try_index_id_keys(
        self: storage.Storage, db: str, coll: str, filter: dict[str, Any], *, collation: Any = None
    ) -> list[bytes] | None:
        if (
            collation is None
            and isinstance(filter, dict)
            and len(filter) > 1
            and "_id" in filter
            and not self._is_timeseries(db, coll)
        ):
            keys = storage._id_point_lookup_keys(filter["_id"])
            if keys is not None:
                found = (self._doc_recordid(db, coll, key) for key in keys)
                return [recordid for recordid in found if recordid is not None]
        return original(self, db, coll, filter, collation=collation)

    return _try_index_id_keys


def prune_oldest_first(self: transactions.TransactionRegistry) -> None:
    """`TransactionRegistry._prune_retryable_locked`, stopping at the first record to keep."""
    records = self._retryable
    cutoff = self._time() - transactions._RETRYABLE_RECORD_LIFETIME_SECONDS
    while records:
        oldest = next(iter(records))
        if records[oldest][1] >= cutoff and len(records) <= transactions._RETRYABLE_RECORD_MAX:
            break
        del records[oldest]


def profile_in_memory(get: Any, set_: Any) -> tuple[Any, Any]:
    """`Storage.get_profile` answered from a copy per database, which `set_profile` drops.
    A lock of its own, held for a copy's lookup (and its first read): a read that began
    before a change cannot put the old settings back after it."""
    lock = threading.Lock()

    def get_profile(self: storage.Storage, db: str) -> dict[str, Any]:
        with lock:
            kept = self.__dict__.setdefault("_pv_profiles", {})
            if db not in kept:
                kept[db] = get(self, db)
            return dict(kept[db])

    def set_profile(self: storage.Storage, db: str, **settings: Any) -> None:
        with lock:
            set_(self, db, **settings)
            self.__dict__.setdefault("_pv_profiles", {}).pop(db, None)

    return get_profile, set_profile


def apply() -> None:
    """Patch the server's classes in this process (idempotent)."""
    if getattr(storage.Storage, "_pv_fixed", False):
        return
    original = storage.Storage._try_index_id_keys
    storage.Storage._try_index_id_keys = point_lookup_first(original)  # type: ignore[method-assign]
    transactions.TransactionRegistry._prune_retryable_locked = prune_oldest_first  # type: ignore[method-assign]
    get, set_ = profile_in_memory(storage.Storage.get_profile, storage.Storage.set_profile)
    storage.Storage.get_profile, storage.Storage.set_profile = get, set_  # type: ignore[method-assign]
    storage.Storage._pv_fixed = True  # type: ignore[attr-defined]


def main() -> int:
    apply()
    from secantus.cli import main as secantusd

    return int(secantusd() or 0)


if __name__ == "__main__":
    sys.exit(main())
