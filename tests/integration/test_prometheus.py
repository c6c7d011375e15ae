"""A real Prometheus scraping a real worker: every deploy/ query parses and the key ones
return data.

Debian's ``/usr/bin/prometheus`` (installed by ``make test``) scrapes one worker
every second while a generated log is replayed through the embedded broker, with
deploy/prometheus/alerts.yml loaded. Then every PromQL expression of the alert
rules and of the on-call dashboard goes to its HTTP API. Run with ``-s`` to see
the time-to-acknowledge quantiles per level as Prometheus computes them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.live import (
    Prometheus,
    scrape,
    start_prometheus,
    wait_for_metrics,
    with_metrics_port,
)
from tests.deploy.promql import (
    ALERTS,
    Query,
    alert_queries,
    alert_rules,
    dashboard_queries,
    substitute,
)
from tests.integration.kafka_helpers import (
    Worker,
    publish,
    settings_for,
    start_worker,
    wait_caught_up,
)
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.settings import TriageSettings

pytestmark = pytest.mark.integration

LEVELS = ("P1", "P2", "P3", "P4")
CHUNKS = 4
"""The log is published in parts, a few scrapes apart, so that counters grow
between scrapes and ``rate``/``increase`` see it (a counter Prometheus first sees
at its final value has a rate of zero)."""
MAY_BE_EMPTY = {
    # The seeded log has accepted overrides but no rejected one.
    "panel 'Overrides and re-assessments' B": "no rejected override in the log",
}
"""Dashboard queries allowed to return no series after this replay, and why."""
NAN_ALLOWED = {
    # The worker runs in replay clock mode (as tests do): report→decision
    # latency is a live-mode, wall-clock measure, so its histogram stays empty.
    "panel 'Report → decision latency (wall clock)' A",
    "panel 'Report → decision latency (wall clock)' B",
}
"""Dashboard queries whose only values may be NaN here, and why (in comments)."""


@dataclass
class Stack:
    """The worker, the Prometheus scraping it, and the worker's final /metrics."""

    settings: TriageSettings
    worker: Worker
    prometheus: Prometheus
    final_metrics: str


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def scalar(prometheus: Prometheus, expr: str) -> float | None:
    """The single value of an instant query, or None when it returns no series."""
    answer = prometheus.query(expr)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def sample_total(text: str, name: str) -> float:
    """The sum of every sample called ``name`` in a /metrics text."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


@pytest.fixture(scope="module")
def stack(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Worker + Prometheus (1 s scrapes, alerts.yml loaded) after a replayed log."""
    tmp: Path = tmp_path_factory.mktemp("prometheus")
    config = GeneratorConfig(victims=120, days=21, start=date(2026, 2, 2), seed=7, bad_rate=0.02)
    records = list(generate_log(config, Engine()))
    settings = with_metrics_port(settings_for(broker.bootstrap, f"p{uuid.uuid4().hex[:8]}."))
    worker = start_worker(settings, tmp / "worker.log")
    prometheus: Prometheus | None = None
    try:
        wait_for_metrics(settings, worker.alive)
        target = f"127.0.0.1:{settings.metrics_port}"
        prometheus = start_prometheus(tmp / "prometheus", [target], [ALERTS])
        server = prometheus
        wait_until(lambda: scalar(server, 'up{job="triage-worker"}') == 1.0, "the first scrape")
        size = math.ceil(len(records) / CHUNKS)
        for start in range(0, len(records), size):
            last = start + size >= len(records)
            publish(settings, records[start : start + size], watermark=last)
            time.sleep(1.5)
        wait_caught_up(settings, worker)
        final = scrape(settings)
        acks = sample_total(final, "triage_time_to_ack_seconds_count")
        assert acks > 0, "the replay produced no acknowledgement"
        wait_until(
            lambda: scalar(server, "sum(triage_time_to_ack_seconds_count)") == acks,
            "Prometheus to scrape the final counts",
        )
        wait_until(lambda: all_rules_evaluated(server), "every alert rule to be evaluated")
        yield Stack(settings, worker, prometheus, final)
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.stop()


def all_rules_evaluated(prometheus: Prometheus) -> bool:
    """Has every loaded rule been evaluated at least once?"""
    groups = prometheus.api("/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    return bool(rules) and all(not rule["lastEvaluation"].startswith("0001") for rule in rules)


def all_queries() -> list[Query]:
    """Every PromQL expression of deploy/, Grafana variables substituted."""
    return [Query(q.origin, substitute(q.expr)) for q in alert_queries() + dashboard_queries()]


class TestAgainstPrometheus:
    def test_every_alert_rule_is_loaded_and_evaluates_without_error(self, stack: Stack) -> None:
        """Prometheus loads alerts.yml whole and evaluates each rule with health ``ok``."""
        groups = stack.prometheus.api("/api/v1/rules")["data"]["groups"]
        loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert set(loaded) == {rule["alert"] for rule in alert_rules()}
        broken = {
            name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"
        }
        assert not broken, broken

    def test_every_expression_parses_and_evaluates(self, stack: Stack) -> None:
        """Every alert and dashboard expression is accepted by /api/v1/query."""
        failures = {}
        for query in all_queries():
            answer = stack.prometheus.query(query.expr)
            if answer.get("status") != "success":
                failures[query.origin] = (answer.get("error"), query.expr)
        assert not failures, failures

    def test_dashboard_queries_return_data(self, stack: Stack) -> None:
        """Each dashboard query returns at least one series (but a documented few), and
        the values are numbers, not NaN (but where NaN has a documented cause)."""
        empty, nan = [], []
        for query in all_queries():
            if not query.origin.startswith(("panel", "variable")):
                continue
            result = stack.prometheus.query(query.expr)["data"]["result"]
            if not result:
                if query.origin not in MAY_BE_EMPTY:
                    empty.append((query.origin, query.expr))
                continue
            values = [float(series["value"][1]) for series in result]
            if all(math.isnan(v) for v in values) and query.origin not in NAN_ALLOWED:
                nan.append((query.origin, query.expr))
        assert not empty, f"queries without data: {empty}"
        assert not nan, f"queries with only NaN: {nan}"

    def test_time_to_ack_quantiles_per_level(self, stack: Stack) -> None:
        """The dashboard's p50/p90/p99 time-to-ack queries give a finite value for every
        level, ordered p50 ≤ p90 ≤ p99; prints them, and the whole-run quantiles."""
        by_quantile: dict[str, dict[str, float]] = {}
        for query in all_queries():
            if "triage_time_to_ack_seconds_bucket" not in query.expr:
                continue
            if not query.expr.startswith("histogram_quantile(") or "level" not in query.expr:
                continue
            quantile = query.expr.removeprefix("histogram_quantile(").split(",", 1)[0]
            result = stack.prometheus.query(query.expr)["data"]["result"]
            by_quantile[quantile] = {s["metric"]["level"]: float(s["value"][1]) for s in result}
        assert set(by_quantile) == {"0.5", "0.9", "0.99"}
        for quantile, values in by_quantile.items():
            assert set(values) == set(LEVELS), (quantile, values)
            assert all(math.isfinite(v) and v >= 0 for v in values.values()), (quantile, values)
        for level in LEVELS:
            p50, p90, p99 = (by_quantile[q][level] for q in ("0.5", "0.9", "0.99"))
            assert p50 <= p90 <= p99, (level, p50, p90, p99)
        whole = {
            q: per_level(
                stack.prometheus,
                f"histogram_quantile({q}, sum by (le, level) (triage_time_to_ack_seconds_bucket))",
            )
            for q in ("0.5", "0.9", "0.99")
        }
        counts = per_level(stack.prometheus, "sum by (level) (triage_time_to_ack_seconds_count)")
        print("\ntime to acknowledge per level (Prometheus histogram_quantile, whole replay)")
        print(f"{'level':<6}{'acks':>6}{'p50':>12}{'p90':>12}{'p99':>12}")
        for level in LEVELS:
            print(
                f"{level:<6}{counts[level]:>6.0f}"
                + "".join(f"{human(whole[q][level]):>12}" for q in ("0.5", "0.9", "0.99"))
            )
        for level in LEVELS:
            assert whole["0.5"][level] <= whole["0.9"][level] <= whole["0.99"][level]

    def test_ratios_stay_ratios(self, stack: Stack) -> None:
        """Every ratio of the dashboard and of the ratio alerts is at most 1 (issue 15:
        the old breach ratio read 184 % while series sat in their first sample); prints
        the breach ratios per level and stage, and what the old expression gave."""
        windows = {"TriageSLABreachRateHigh": "6h", "TriageDeadLetterRatioHigh": "15m"}
        for rule in alert_rules():
            if rule["alert"] in ALERT_RATIOS:  # the copies below are the alerts' own ratios
                ratio = ALERT_RATIOS[rule["alert"]].replace("$window", windows[rule["alert"]])
                assert squash(ratio) in squash(rule["expr"]), rule["alert"]
        ratios = [q for q in all_queries() if "ratio" in q.origin.lower()]
        ratios += [
            Query(f"alert {name} (ratio)", ALERT_RATIOS[name].replace("$window", "1h"))
            for name in ALERT_RATIOS
        ]
        assert len(ratios) >= 4, [q.origin for q in ratios]
        above = {}
        for query in ratios:
            answer = stack.prometheus.query(query.expr)
            assert answer["status"] == "success", (query.origin, answer)
            values = [float(s["value"][1]) for s in answer["data"]["result"]]
            if any(v > 1 for v in values if not math.isnan(v)):
                above[query.origin] = values
        assert not above, above
        new = stack.prometheus.query(
            ALERT_RATIOS["TriageSLABreachRateHigh"].replace("$window", "1h")
        )
        old = stack.prometheus.query(OLD_BREACH_RATIO)
        shown = {
            (s["metric"]["level"], s["metric"]["stage"]): float(s["value"][1])
            for s in new["data"]["result"]
        }
        before = {
            (s["metric"]["level"], s["metric"]["stage"]): float(s["value"][1])
            for s in old["data"]["result"]
        }
        print("\nSLA breach ratio over the replay (missed / fell due; old: / queue records)")
        for key in sorted(shown):
            print(
                f"  {key[0]} {key[1]:<7}{shown[key]:>8.1%}   old {before.get(key, math.nan):>8.1%}"
            )


ALERT_RATIOS = {
    "TriageSLABreachRateHigh": (
        'sum by (level, stage) (increase(triage_sla_breaches_total{stage!="review"}[$window]))'
        ' / (sum by (level, stage) (increase(triage_sla_breaches_total{stage!="review"}'
        "[$window])) + (sum by (level, stage) (increase(triage_sla_deadlines_met_total"
        '{stage!="review"}[$window])) or sum by (level, stage) (increase('
        'triage_sla_breaches_total{stage!="review"}[$window])) * 0))'
    ),
    "TriageDeadLetterRatioHigh": (
        "sum(rate(triage_dead_letters_total[$window])) / ("
        "sum(rate(triage_dead_letters_total[$window])) + (sum(rate(triage_events_total"
        '{type!~"clock.watermark|invalid", outcome!="refused"}[$window])) or vector(0)))'
    ),
}
"""The ratio part of the ratio alerts (as in alerts.yml, over a window of this replay)."""
OLD_BREACH_RATIO = (
    "sum by (level, stage) (increase(triage_sla_breaches_total[1h]))"
    " / on (level) group_left sum by (level) (increase(triage_queue_records_total[1h]))"
)
"""The breach ratio before issue 15: breaches over queue records routed."""


def squash(expr: str) -> str:
    """``expr`` without whitespace (for comparison)."""
    return "".join(expr.split())


def per_level(prometheus: Prometheus, expr: str) -> dict[str, float]:
    """An instant query's value per ``level`` label."""
    answer = prometheus.query(expr)
    assert answer["status"] == "success", answer
    return {s["metric"]["level"]: float(s["value"][1]) for s in answer["data"]["result"]}


def human(seconds: float) -> str:
    """Seconds as ``4.2 min``, ``3.1 h``, ``2.0 d``."""
    if math.isnan(seconds):
        return "NaN"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
