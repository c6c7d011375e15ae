"""deploy/prometheus and deploy/grafana, checked without a server.

promtool validates the scrape configuration and runs the alert rules' unit tests;
pure-Python checks make sure every metric the rules and the dashboard query exists
in a :class:`TriageMetrics` exposition, with the labels they use, and that every
alert says what it is and where its runbook section is.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from functools import cache

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.promql import (
    ALERT_TESTS,
    ALERTS,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    PROMETHEUS_CONFIG,
    REPO,
    RUNBOOK,
    Query,
    alert_queries,
    alert_rules,
    dashboard,
    dashboard_queries,
    grouping_labels,
    load_yaml,
    metric_names,
    panels,
    selector_labels,
)
from triage.generate import GeneratorConfig, generate_log
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.pipeline.observations import (
    Duplicate,
    Overridden,
    OverrideProblem,
    OverrideRejection,
    ReassessmentDue,
)
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.topics import Topics

PROMETHEUS_LABELS = frozenset({"job", "instance"})
"""Labels Prometheus adds to every scraped series."""
SYNTHETIC = {"up": {"job", "instance"}}
"""Series Prometheus writes itself for each target."""
SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
"""Sample names of each ``# TYPE`` (counters are typed under their ``_total`` name)."""
DATASOURCE_UID = "triage-prometheus"
DASHBOARD_UID = "triage-oncall"


def promtool(*args: str) -> str:
    """Run promtool from the repository root; fail with its output if it fails."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "promtool is not installed: run `make test`, which installs Debian's "
            "`prometheus` package (promtool and prometheus) when promtool is missing",
            pytrace=False,
        )
    result = subprocess.run(
        [binary, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"promtool {' '.join(args)} failed:\n{output}", pytrace=False)
    return output


@cache
def exposition() -> dict[str, set[str]]:
    """Sample name → label names, from a TriageMetrics registry fed with real observations.

    A small generated log is replayed offline (acks, breaches, dead letters,
    open cases…), then one observation of every kind makes sure every labelled
    metric has a sample. Names without samples come from the ``# TYPE`` lines.
    """
    engine = Engine()
    topics = Topics()
    metrics = TriageMetrics()
    processor = Processor(engine, topics)
    metrics.watch_open_cases(lambda: list(processor.states.values()))
    log = generate_log(GeneratorConfig(victims=30, days=7, bad_rate=0.05), engine)
    for record in log:
        metrics.observe(processor.feed(to_raw(record, topics)).observations)
    assert processor.clock is not None
    metrics.observe(processor.advance(processor.clock + timedelta(days=4)).observations)
    metrics.observe(
        [
            Overridden("P2", "up", reason="new_information"),
            OverrideRejection("P3", "down", OverrideProblem.MISSING_SECOND_REVIEWER),
            ReassessmentDue("P3", "follow-up", unit="U"),
            Duplicate(),
        ]
    )
    metrics.consumer_lag.labels("dv.reports.v1").set(0)
    metrics.processing.observe(0.01)
    metrics.report_to_decision.observe(0.01)
    text = generate_latest(metrics.registry).decode()
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = re.match(r"# TYPE (\S+) (counter|gauge|histogram)$", line)
        if match:
            name, kind = match.groups()
            for suffix in SUFFIXES[kind]:
                names.setdefault(name + suffix, set())
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def all_queries() -> list[Query]:
    """Every PromQL expression of deploy/."""
    return alert_queries() + dashboard_queries()


# -- promtool -------------------------------------------------------------------------


class TestPromtool:
    def test_scrape_configuration_and_rule_files_are_valid(self) -> None:
        """``promtool check config`` accepts prometheus.yml and the rule files it loads."""
        output = promtool("check", "config", str(PROMETHEUS_CONFIG.relative_to(REPO)))
        assert "SUCCESS" in output

    def test_alert_unit_tests_pass(self) -> None:
        """``promtool test rules`` runs alerts.test.yml green."""
        output = promtool("test", "rules", str(ALERT_TESTS.relative_to(REPO)))
        assert "SUCCESS" in output


# -- the files ---------------------------------------------------------------------------


class TestPrometheusFiles:
    def test_workers_are_scraped_and_alerts_loaded(self) -> None:
        """prometheus.yml has the ``triage-worker`` job and loads alerts.yml."""
        config = load_yaml(PROMETHEUS_CONFIG)
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert "triage-worker" in jobs
        assert jobs["triage-worker"].get("metrics_path", "/metrics") == "/metrics"
        assert ALERTS.name in config["rule_files"]

    def test_every_alert_has_severity_summary_description_and_runbook(self) -> None:
        """Each alert carries a severity label and the three annotations, none empty."""
        rules = alert_rules()
        assert rules
        for rule in rules:
            assert "alert" in rule, f"not an alerting rule: {rule}"
            assert rule.get("labels", {}).get("severity") in ("critical", "warning"), rule["alert"]
            annotations = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                assert str(annotations.get(key, "")).strip(), f"{rule['alert']}: no {key}"

    def test_runbook_urls_point_at_existing_sections(self) -> None:
        """Every ``runbook_url`` is ``docs/runbook.md#anchor`` and the anchor exists."""
        anchors = runbook_anchors()
        for rule in alert_rules():
            url = rule["annotations"]["runbook_url"]
            path, _, anchor = url.partition("#")
            assert path.endswith("docs/runbook.md"), f"{rule['alert']}: {url}"
            assert anchor in anchors, f"{rule['alert']}: no anchor {anchor!r} in docs/runbook.md"

    def test_each_runbook_section_is_titled_with_its_alert(self) -> None:
        """The heading after an alert's anchor names that alert."""
        text = RUNBOOK.read_text(encoding="utf-8")
        for rule in alert_rules():
            anchor = rule["annotations"]["runbook_url"].partition("#")[2]
            match = re.search(rf'<a id="{re.escape(anchor)}"></a>\s*\n##\s+(\S+)', text)
            assert match, f"no heading after anchor {anchor}"
            assert match.group(1) == rule["alert"]

    def test_worst_case_page_latency_is_under_a_minute(self) -> None:
        """Scrape interval + evaluation interval + the critical route's group_wait (the
        "Page latency" budget of docs/runbook.md) stays under a minute, and the runbook
        gives that worst case."""
        config = load_yaml(PROMETHEUS_CONFIG)
        job = next(j for j in config["scrape_configs"] if j["job_name"] == "triage-worker")
        scrape = seconds(job.get("scrape_interval", config["global"]["scrape_interval"]))
        evaluation = seconds(config["global"]["evaluation_interval"])
        route = load_yaml(REPO / "deploy" / "alertmanager" / "alertmanager.yml")["route"]
        critical = next(r for r in route["routes"] if 'severity="critical"' in r["matchers"])
        group_wait = seconds(critical.get("group_wait", route["group_wait"]))
        worst = scrape + evaluation + group_wait

        assert worst + 2 < 60, (scrape, evaluation, group_wait)
        assert f"≈ {worst + 2:.0f} s" in RUNBOOK.read_text(encoding="utf-8")

    def test_every_alert_is_tested_firing_and_not_firing(self) -> None:
        """alerts.test.yml has, for every alert, a case that fires and one that does not."""
        cases = [
            case
            for test in load_yaml(ALERT_TESTS)["tests"]
            for case in test.get("alert_rule_test", [])
        ]
        for rule in alert_rules():
            mine = [case for case in cases if case["alertname"] == rule["alert"]]
            assert any(case.get("exp_alerts") for case in mine), f"{rule['alert']} never fires"
            assert any(not case.get("exp_alerts") for case in mine), (
                f"{rule['alert']} is never shown not firing"
            )


class TestGrafanaFiles:
    def test_datasource_has_the_uid_the_dashboard_uses(self) -> None:
        """The provisioned Prometheus datasource has the fixed uid."""
        sources = load_yaml(DATASOURCES)["datasources"]
        assert [s["uid"] for s in sources if s["type"] == "prometheus"] == [DATASOURCE_UID]

    def test_dashboard_provider_is_a_file_provider(self) -> None:
        """The dashboard provider reads files."""
        providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
        assert providers
        assert all(p["type"] == "file" and p["options"]["path"] for p in providers)

    def test_dashboard_has_a_fixed_uid_and_unit_and_queue_filters(self) -> None:
        """Fixed uid, and ``unit`` and ``queue`` template variables that allow "All"."""
        board = dashboard()
        assert board["uid"] == DASHBOARD_UID
        variables = {v["name"]: v for v in board["templating"]["list"]}
        for name in ("unit", "queue"):
            assert variables[name]["includeAll"]
            assert variables[name]["allValue"] == ".*"
        exprs = " ".join(q.expr for q in dashboard_queries())
        assert 'unit=~"$unit"' in exprs
        assert 'queue=~"$queue"' in exprs

    def test_every_panel_and_target_uses_the_datasource_by_uid(self) -> None:
        """No panel relies on the default datasource or names one by its display name."""
        for panel in panels(dashboard()):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}

    def test_dashboard_shows_what_on_call_needs(self) -> None:
        """Open cases, SLA breaches, time-to-ack p50/p90/p99 per level, report→decision
        latency, dead letters, throughput and consumer lag each have a query."""
        exprs = [q.expr for q in dashboard_queries()]
        joined = "\n".join(exprs)
        for quantile in ("0.5", "0.9", "0.99"):
            assert any(
                e.startswith(f"histogram_quantile({quantile},")
                and "triage_time_to_ack_seconds_bucket" in e
                and "by (le, level)" in e
                for e in exprs
            ), f"no time-to-ack p{quantile} per level"
        for metric in (
            "triage_open_cases",
            "triage_sla_breaches_total",
            "triage_report_to_decision_seconds_bucket",
            "triage_dead_letters_total",
            "triage_events_total",
            "triage_consumer_lag",
        ):
            assert metric in joined, metric


# -- PromQL against the metrics -----------------------------------------------------------


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: q.origin)
class TestQueriesUseRealMetrics:
    def test_metric_names_exist(self, query: Query) -> None:
        """Every metric name in the expression is exposed by TriageMetrics (or is ``up``)."""
        names = metric_names(query.expr)
        assert names, f"no metric found in {query.expr!r}"
        known = exposition().keys() | SYNTHETIC.keys()
        assert names <= known, f"unknown metrics {sorted(names - known)} in {query.expr!r}"

    def test_label_names_exist(self, query: Query) -> None:
        """Label matchers name labels of their metric; groupings name labels of some metric."""
        metrics = exposition() | SYNTHETIC
        for metric, label in selector_labels(query.expr):
            allowed = metrics.get(metric, set()) | PROMETHEUS_LABELS
            assert label in allowed, f"{metric} has no label {label!r}: {query.expr!r}"
        every_label = set().union(*metrics.values()) | PROMETHEUS_LABELS
        unknown = grouping_labels(query.expr) - every_label
        assert not unknown, f"unknown labels {sorted(unknown)} in {query.expr!r}"


def runbook_anchors() -> set[str]:
    """Explicit ``<a id>`` anchors and GitHub-style heading slugs of docs/runbook.md."""
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([^"]+)"', text))
    for heading in re.findall(r"^#+\s+(.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_the_metric_name_parser_sees_what_it_should() -> None:
    """Functions, keywords, label names, durations and strings are not metric names."""
    expr = (
        'sum by (queue) (increase(triage_sla_breaches_total{level="P1", stage="ack"}[10m]) > 0)'
        ' or sum by (queue) ((triage_sla_breaches_total{level="P1"} unless '
        "triage_sla_breaches_total offset 10m) and on (job, instance) (up offset 10m))"
        ' / on (level) group_left histogram_quantile(0.9, rate(a_b_bucket{x=~"$unit"}[$window]))'
    )
    assert metric_names(expr) == {"triage_sla_breaches_total", "up", "a_b_bucket"}
    assert selector_labels(expr) == {
        ("triage_sla_breaches_total", "level"),
        ("triage_sla_breaches_total", "stage"),
        ("a_b_bucket", "x"),
    }
    assert grouping_labels(expr) == {"queue", "job", "instance", "level"}


def seconds(duration: str) -> float:
    """A Prometheus duration such as ``15s``, ``1m`` or ``1h30m`` in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)
