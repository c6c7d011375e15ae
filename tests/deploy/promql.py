"""The PromQL of deploy/: alert rules, dashboard queries, and the metric names they use.

Shared by the file checks in ``tests/deploy`` and by the real-Prometheus test in
``tests/integration/test_prometheus.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "triage-oncall.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "triage.yml"
RUNBOOK = REPO / "docs" / "runbook.md"

SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$window": "1h",
    "$unit": ".*",
    "$queue": ".*",
}
"""Grafana variables → values a plain Prometheus accepts (longest names first when applied)."""

_LABEL_VALUES = re.compile(r"^label_values\(\s*(?P<metric>[^,]+?)\s*,\s*(?P<label>\w+)\s*\)$")


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from (for messages)."""

    origin: str
    expr: str


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The on-call dashboard."""
    result: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return result


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_query(variable: dict[str, Any]) -> str | None:
    """The query text of a query-type template variable."""
    if variable.get("type") != "query":
        return None
    query = variable.get("query")
    return query.get("query") if isinstance(query, dict) else query


def alert_queries() -> list[Query]:
    """The expression of every alert."""
    return [Query(f"alert {rule['alert']}", rule["expr"].strip()) for rule in alert_rules()]


def dashboard_queries() -> list[Query]:
    """Every panel target's expression and every template variable's query, as PromQL.

    ``label_values(METRIC, LABEL)`` (a Grafana function) becomes
    ``group by (LABEL) (METRIC)``, which returns the same values.
    """
    board = dashboard()
    out = [
        Query(f"panel {panel['title']!r} {target.get('refId', '')}", target["expr"].strip())
        for panel in panels(board)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in board.get("templating", {}).get("list", []):
        text = variable_query(variable)
        if text is None:
            continue
        match = _LABEL_VALUES.match(text.strip())
        assert match, f"variable {variable['name']}: unexpected query {text!r}"
        out.append(
            Query(
                f"variable ${variable['name']}",
                f"group by ({match['label']}) ({match['metric']})",
            )
        )
    return out


def substitute(expr: str) -> str:
    """``expr`` with Grafana's variables replaced by plain values."""
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    return expr


# -- metric names in PromQL ---------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:$.])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "offset", "bool", "atan2", "inf", "nan", "Inf", "NaN"}
)  # fmt: skip
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels left out)."""
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    return {name for name in _IDENT.findall(text) if name not in _KEYWORDS}


def selector_labels(expr: str) -> set[tuple[str, str]]:
    """(metric, label name) of every label matcher written after a metric name."""
    text = _STRING.sub('""', expr)
    return {
        (metric, label)
        for metric, body in _SELECTOR.findall(text)
        for label in _MATCHER_LABEL.findall(body)
    }


def grouping_labels(expr: str) -> set[str]:
    """Label names of every ``by``/``without``/``on``/``ignoring``/``group_*`` clause."""
    return {
        label.strip()
        for _kw, body in _GROUPING.findall(_STRING.sub('""', expr))
        for label in body.split(",")
        if label.strip()
    }
