"""The MongoDB queries the services send, captured at the database and reduced to shapes,
with the index each one uses.

Captured by the database's profiler (`profile: 2`, which records every command with the
client's address, on MongoDB and SecantusDB alike); the client's port names the service
process that holds that connection (from /proc). A shape is (service, collection,
command, filter fields with their operators, sort); the index is what `explain` of that
filter and sort says (`queryPlanner`: the winning plan's IXSCAN, or COLLSCAN), asked with
one real filter of the shape, since partial indexes depend on the values.

SecantusDB answers `explain` but plans more simply than MongoDB (an `_id` equality beside
other predicates comes back as COLLSCAN), so each shape is also matched to the indexes
(`index_information()`) by MongoDB's prefix rule: an index serves a filter that bounds its
first field (equality, `$in`, a range, or `$exists: false` on an index that is not sparse,
bounds [null, null]; not `$ne`, `$nin`, `$exists: true`), and an `$or` whose every branch
is served. A shape has an index when either says so.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

# Commands that read by a filter, and where each keeps it.
QUERIES = {"find", "findAndModify", "update", "delete", "count", "distinct", "aggregate"}
COLLSCAN = "COLLSCAN"


@dataclass(frozen=True)
class Shape:
    service: str
    collection: str
    command: str
    filter: tuple[str, ...]  # "field" for equality, "field $op" otherwise
    sort: tuple[str, ...]

    def describe(self) -> str:
        fields = ", ".join(self.filter) or "—"
        return f"{{{fields}}}" + (f" sort {', '.join(self.sort)}" if self.sort else "")


@dataclass
class Query:
    shape: Shape
    filter: dict[str, Any]  # one real filter of the shape, for explain
    sort: dict[str, Any] | None
    count: int = 0
    index: str = ""  # the index explain chose, or COLLSCAN
    prefix: str = ""  # the index MongoDB's prefix rule finds, or ""

    @property
    def indexed(self) -> bool:
        return bool(self.prefix) or self.index != COLLSCAN or not self.shape.filter

    blocking_sort: bool = False
    samples: list[dict[str, Any]] = field(default_factory=list)


async def start(db: AsyncDatabase) -> None:
    """Record every command on this database from now on."""
    await db.command("profile", 2)


def filter_fields(query: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in query.items():
        if key in ("$and", "$or", "$nor"):
            for part in value:
                out += filter_fields(part, prefix=f"{key} ")
        elif key.startswith("$"):
            out.append(prefix + key)
        elif isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
            ops = sorted(k for k in value if k != "$eq")
            out.append(prefix + key + (" " + " ".join(ops) if ops else ""))
        else:
            out.append(prefix + key)
    return sorted(set(out))


def reads(command: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(command name, filter, sort) of each read a command makes; none for inserts and
    commands that read by no filter."""
    name = next(iter(command))
    if name == "findandmodify":
        name = "findAndModify"
    if name not in QUERIES:
        return []
    if name == "find":
        return [(name, dict(command.get("filter") or {}), command.get("sort"))]
    if name == "findAndModify":
        return [(name, dict(command.get("query") or {}), command.get("sort"))]
    if name in ("count", "distinct"):
        return [(name, dict(command.get("query") or {}), None)]
    if name == "update":
        return [(name, dict(u.get("q") or {}), None) for u in command.get("updates") or []]
    if name == "delete":
        return [(name, dict(d.get("q") or {}), None) for d in command.get("deletes") or []]
    stages = command.get("pipeline") or [{}]
    if "$changeStream" in stages[0]:
        return []
    return [(name, dict(stages[0].get("$match") or {}), None)]


def client_ports(pids: Mapping[str, int]) -> dict[int, str]:
    """The local TCP ports of each process's sockets: port -> name."""
    inodes: dict[str, str] = {}
    for name, pid in pids.items():
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = name
    ports: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            if columns[9] in inodes:
                ports[int(columns[1].rsplit(":", 1)[1], 16)] = inodes[columns[9]]
    return ports


async def captured(db: AsyncDatabase, pids: Mapping[str, int]) -> list[Query]:
    """Every query shape recorded since `start`, with its index; call while the services
    still run (their connections name them)."""
    ports = client_ports({**pids, "self": os.getpid()})
    queries: dict[Shape, Query] = {}
    async for entry in db["system.profile"].find({}):
        coll = entry.get("ns", "").partition(".")[2]
        if not coll or coll.startswith("system."):
            continue
        port = int(entry.get("client", ":0").rsplit(":", 1)[1] or 0)
        # A connection closed since is "unknown", still checked; the caller's own are not.
        service = ports.get(port, "unknown")
        if service == "self":
            continue
        for command, query, sort in reads(entry["command"]):
            shape = Shape(service, coll, command, tuple(filter_fields(query)), tuple(sort or ()))
            found = queries.setdefault(shape, Query(shape, query, dict(sort) if sort else None))
            found.count += 1
    indexes: dict[str, dict[str, Any]] = {}
    for query in queries.values():
        query.index, query.blocking_sort = await explain(db, query)
        coll = query.shape.collection
        if coll not in indexes:
            indexes[coll] = await db[coll].index_information()
        query.prefix = prefix_index(query.filter, indexes[coll])
    return sorted(queries.values(), key=lambda q: (q.shape.service, q.shape.collection, -q.count))


async def explain(db: AsyncDatabase, query: Query) -> tuple[str, bool]:
    """The index the winning plan scans (or COLLSCAN), and whether it sorts in memory."""
    find: dict[str, Any] = {"find": query.shape.collection, "filter": query.filter}
    if query.sort:
        find["sort"] = query.sort
    plan = (await db.command({"explain": find, "verbosity": "queryPlanner"}))["queryPlanner"]
    stage = plan["winningPlan"]
    index, blocking = COLLSCAN, False
    while stage:
        if stage.get("stage") == "SORT":
            blocking = True
        if stage.get("stage") == "IXSCAN":
            index = stage["indexName"]
        stage = stage.get("inputStage")
    return index, blocking


BOUNDS = {"$eq", "$in", "$lt", "$lte", "$gt", "$gte"}


def bounded(value: Any, sparse: bool) -> bool:
    """A predicate that gives index bounds (equality, `$in`, a range; a missing field is
    null in an index that is not sparse)."""
    if isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
        missing = value.get("$exists") is False and not sparse
        return bool(BOUNDS & set(value)) or missing
    return True


def prefix_index(query: Mapping[str, Any], indexes: Mapping[str, Any]) -> str:
    """The index that bounds most leading fields of `query` (MongoDB's prefix rule), the
    indexes of each branch of an `$or` joined by "|", or "" when none serves it."""
    best, longest = "", 0
    for name, info in indexes.items():
        sparse = bool(info.get("sparse"))
        fields = {k for k, v in query.items() if not k.startswith("$") and bounded(v, sparse)}
        partial = info.get("partialFilterExpression") or {}
        if any(k not in fields for k in partial):
            continue  # a partial index serves only filters that imply its own
        keys = [key for key, _ in info["key"]]
        served = next((i for i, key in enumerate(keys) if key not in fields), len(keys))
        if served > longest:
            best, longest = name, served
    if best or "$or" not in query:
        return best
    rest = {k: v for k, v in query.items() if k != "$or"}
    branches = [prefix_index({**rest, **branch}, indexes) for branch in query["$or"]]
    return " | ".join(sorted(set(branches))) if all(branches) else ""


def table(queries: list[Query]) -> str:
    """A Markdown table of the shapes."""
    lines = [
        "| service | collection | command | filter, sort | index (prefix rule) "
        "| explain on SecantusDB | seen |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in queries:
        s = q.shape
        index = f"`{q.index}`" + (" + sort in memory" if q.blocking_sort else "")
        lines.append(
            f"| {s.service} | {s.collection} | {s.command} | `{s.describe()}` | "
            f"{f'`{q.prefix}`' if q.prefix else '**none**'} | {index} | {q.count} |"
        )
    return "\n".join(lines)
