"""What a dashboard panel or an alert asks Prometheus for: the metric names and label
matchers of its PromQL, read with a real PromQL parser (promql-parser)."""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

# Grafana's interval variables stand where PromQL wants a duration.
_GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(\w+)\}")
# A templating query: `label_values(metric, label)` is Grafana's, not PromQL.
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<expr>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


@dataclass(frozen=True)
class Selector:
    """One series selector: `name{label="value", ...}`; `equal` keeps the `=` matchers."""

    name: str
    equal: tuple[tuple[str, str], ...]


def selectors(expr: str) -> list[Selector]:
    """The selectors of a PromQL expression (or of a Grafana `label_values` query)."""
    match = _LABEL_VALUES.match(expr)
    if match:
        if not match.group("expr"):
            return []
        expr = match.group("expr")
    expr = _GRAFANA_DURATIONS.sub("5m", expr)
    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            equal = tuple(
                (m.name, m.value)
                for m in node.matchers.matchers
                if m.op == promql_parser.MatchOp.Equal and m.name != "__name__"
            )
            found.append(Selector(node.name, equal))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _nodes(child)


def dashboard_queries(path: Path) -> Iterator[tuple[str, str]]:
    """(where, expression) for every panel target and templating query of a dashboard."""
    board = json.loads(path.read_text())
    for panel in _nodes(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"{path.name}: {panel.get('title', '?')}", target["expr"]
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if query:
            yield f"{path.name}: ${variable['name']}", query
