"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON Schema
(vendored in ``data/``, see its README), then read as a deployment: every file
it mounts or builds from exists, every ``TRIAGE_*`` variable is a real setting
with a valid value, the Kafka cluster is consistent (three KRaft voters,
replication factor 3, min.insync.replicas 2), the workers share what they must
and nothing they must not, and Prometheus, Alertmanager and Grafana point at
the services this file defines.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

from triage.settings import TriageSettings
from triage.settings_reference import env_var

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"
SCHEMA_SHA256 = "1f91e091f16b2dd50ab8860e02bb391d22df553d91c145eacedb1b6eff9c3f0e"

KAFKA_IMAGE = "apache/kafka"
KAFKA_NODES = 3
TRIAGE_VARIABLES = {env_var(TriageSettings, name): name for name in TriageSettings.model_fields}
# What the provisioning step and every worker must agree on.
SHARED_SETTINGS = (
    "TRIAGE_KAFKA_BOOTSTRAP",
    "TRIAGE_KAFKA_SECURITY_PROTOCOL",
    "TRIAGE_TOPIC_PREFIX",
    "TRIAGE_PARTITIONS",
    "TRIAGE_REPLICATION_FACTOR",
    "TRIAGE_GROUP_ID",
)

Service = dict[str, Any]


# -- reading the files ----------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    """docker-compose.yml as Compose reads it (anchors and ``<<`` merges resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def services() -> dict[str, Service]:
    """Every service, by name."""
    found: dict[str, Service] = compose()["services"]
    return found


def environment(service: Service) -> dict[str, str]:
    """A service's environment as a mapping (list form ``K=V`` included)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def builds_triage(service: Service) -> bool:
    """Whether the service runs the image built from this repository."""
    return "build" in service


def command(service: Service) -> list[str]:
    """The service's command as a list of arguments (the image's CMD when unset)."""
    cmd = service.get("command")
    if cmd is None:
        return dockerfile().cmd if builds_triage(service) else []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def workers() -> dict[str, Service]:
    """Services that run ``triage worker``."""
    return {n: s for n, s in services().items() if builds_triage(s) and command(s) == ["worker"]}


def kafka_nodes() -> dict[str, Service]:
    """Services that run the Apache Kafka image."""
    return {
        n: s for n, s in services().items() if str(s.get("image", "")).startswith(KAFKA_IMAGE + ":")
    }


@dataclass(frozen=True, slots=True)
class Mount:
    """One entry of a service's ``volumes``."""

    kind: str  # "bind" or "volume"
    source: str
    target: str


def mounts(service: Service) -> list[Mount]:
    """A service's volumes, short (``src:dst[:mode]``) and long syntax alike."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, target = entry.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
            found.append(Mount(kind, source, target))
        else:
            found.append(Mount(entry["type"], str(entry.get("source", "")), entry["target"]))
    return found


def repo_path(source: str) -> Path:
    """A bind-mount or build source, relative to the compose file's directory."""
    return (COMPOSE_FILE.parent / source).resolve()


def mounted_file(service_name: str, target: str) -> Path:
    """The repository file mounted at ``target`` in ``service_name`` (directories too)."""
    wanted = PurePosixPath(target)
    for mount in mounts(services()[service_name]):
        base = PurePosixPath(mount.target)
        if mount.kind == "bind" and (wanted == base or base in wanted.parents):
            return repo_path(mount.source) / wanted.relative_to(base)
    raise AssertionError(f"{service_name} mounts nothing at {target}")


def load_yaml(path: Path) -> Any:
    """A YAML file of the repository."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """The few things about the Dockerfile these tests look at."""

    stages: list[str]  # FROM arguments, in order
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments) of the final stage

    def all(self, name: str) -> list[str]:
        """Arguments of every ``name`` instruction in the final stage."""
        return [args for inst, args in self.instructions if inst == name]

    def exec_form(self, name: str) -> list[str]:
        """The last ``name`` instruction (ENTRYPOINT, CMD) in exec form."""
        values = self.all(name)
        assert values, f"the Dockerfile has no {name}"
        parsed = json.loads(values[-1])
        assert isinstance(parsed, list), f"{name} is not in exec form"
        return [str(v) for v in parsed]

    @property
    def cmd(self) -> list[str]:
        """The default command."""
        return self.exec_form("CMD")

    @property
    def env(self) -> dict[str, str]:
        """ENV of the final stage (``KEY=VALUE`` form)."""
        found: dict[str, str] = {}
        for args in self.all("ENV"):
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                found[key] = value
        return found


@cache
def dockerfile() -> Dockerfile:
    """The Dockerfile, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    stages: list[str] = []
    final: list[tuple[str, str]] = []
    for entry in logical:
        instruction, _, args = entry.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append(args.strip())
            final = []
        else:
            final.append((instruction, args.strip()))
    return Dockerfile(stages, final)


def _walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_strings(value)


# -- the checks ------------------------------------------------------------------


class TestComposeSpecification:
    def test_vendored_schema_is_the_recorded_one(self) -> None:
        """The vendored schema is byte for byte the upstream file its README names."""
        digest = hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest()

        assert digest == SCHEMA_SHA256

    def test_file_is_valid(self) -> None:
        """docker-compose.yml is valid under the Compose Specification's JSON Schema."""
        schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
        validator = Draft7Validator(schema)

        errors = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in validator.iter_errors(compose())
        ]

        assert errors == []

    def test_schema_rejects_a_broken_file(self) -> None:
        """The schema is no rubber stamp: a misspelt service key fails validation."""
        schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
        broken = copy.deepcopy(compose())
        broken["services"]["worker-1"]["healthcheck"]["intervall"] = "15s"

        assert not Draft7Validator(schema).is_valid(broken)

    def test_no_interpolation_left_to_chance(self) -> None:
        """No value depends on a host variable: secrets come in as Compose secrets."""
        assert [s for s in _walk_strings(compose()) if re.search(r"(?<!\$)\$\{?\w", s)] == []


class TestFilesExist:
    def test_build_contexts_and_dockerfiles(self) -> None:
        """Every build context is a directory of the repository holding its Dockerfile."""
        built = {n: s["build"] for n, s in services().items() if "build" in s}

        assert built, "no service is built from this repository"
        for name, build in built.items():
            context = repo_path(build if isinstance(build, str) else build.get("context", "."))
            dockerfile_name = "Dockerfile" if isinstance(build, str) else build["dockerfile"]
            assert context.is_dir(), f"{name}: build context {context} is missing"
            assert (context / dockerfile_name).is_file(), f"{name}: {dockerfile_name} is missing"

    def test_bind_mounts(self) -> None:
        """Every bind-mounted file or directory exists (Docker would create an empty dir)."""
        missing = [
            f"{name}: {mount.source}"
            for name, service in services().items()
            for mount in mounts(service)
            if mount.kind == "bind" and not repo_path(mount.source).exists()
        ]

        assert missing == []

    def test_bind_mounts_stay_in_the_repository(self) -> None:
        """Bind mounts are repository paths, mounted read-only."""
        for name, service in services().items():
            for entry, mount in zip(service.get("volumes", []), mounts(service), strict=True):
                if mount.kind != "bind":
                    continue
                assert repo_path(mount.source).is_relative_to(ROOT), f"{name}: {mount.source}"
                read_only = entry.endswith(":ro") if isinstance(entry, str) else entry["read_only"]
                assert read_only, f"{name}: {mount.source} is mounted read-write"

    def test_named_volumes_and_secrets_are_declared(self) -> None:
        """Named volumes and secrets used by a service are declared at the top level."""
        volumes = set(compose().get("volumes") or {})
        secrets = compose().get("secrets") or {}
        for name, service in services().items():
            for mount in mounts(service):
                if mount.kind == "volume":
                    assert mount.source in volumes, f"{name}: volume {mount.source} undeclared"
            for secret in service.get("secrets", []):
                source = secret if isinstance(secret, str) else secret["source"]
                assert source in secrets, f"{name}: secret {source} undeclared"
        for name, secret in secrets.items():
            if "file" in secret:
                assert repo_path(secret["file"]).is_file(), f"secret {name}: file missing"

    def test_env_files(self) -> None:
        """Every env_file a service names exists."""
        for name, service in services().items():
            files = service.get("env_file") or []
            for entry in [files] if isinstance(files, str) else files:
                path = entry if isinstance(entry, str) else entry["path"]
                assert repo_path(path).is_file(), f"{name}: env_file {path} missing"


class TestTriageSettings:
    def test_only_real_settings(self) -> None:
        """Every TRIAGE_* variable a service sets is a field of TriageSettings."""
        unknown = {
            f"{name}: {key}"
            for name, service in services().items()
            for key in environment(service)
            if key.startswith("TRIAGE_") and key not in TRIAGE_VARIABLES
        }

        assert unknown == set()

    def test_dockerfile_sets_only_real_settings(self) -> None:
        """The image's own TRIAGE_* defaults are fields of TriageSettings too."""
        env = dockerfile().env

        assert {k for k in env if k.startswith("TRIAGE_")} <= set(TRIAGE_VARIABLES)

    @pytest.mark.parametrize("name", sorted(n for n, s in services().items() if builds_triage(s)))
    def test_values_are_accepted(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The settings object accepts the variables of each triage service as they are."""
        for key in list(os.environ):
            if key.upper().startswith("TRIAGE_"):
                monkeypatch.delenv(key)
        env = {**dockerfile().env, **environment(services()[name])}
        for key, value in env.items():
            if key.startswith("TRIAGE_"):
                monkeypatch.setenv(key, value)

        settings = TriageSettings()

        assert settings.kafka_bootstrap is not None, f"{name} would start an embedded broker"

    def test_provisioning_and_workers_agree(self) -> None:
        """Topics service and workers share bootstrap, partitions, replication, names, group."""
        triage = {n: environment(s) for n, s in services().items() if builds_triage(s)}

        for key in SHARED_SETTINGS:
            values = {name: env.get(key) for name, env in triage.items()}
            assert len(set(values.values())) == 1, f"{key} differs: {values}"

    def test_topics_service_provisions(self) -> None:
        """A one-shot service runs `triage topics create` and is not restarted."""
        provisioners = [s for s in services().values() if command(s) == ["topics", "create"]]

        assert len(provisioners) == 1
        assert provisioners[0].get("restart", "no") == "no"


class TestWorkers:
    def test_two_or_more(self) -> None:
        """At least two workers share the consumer group."""
        assert len(workers()) >= 2

    @pytest.mark.parametrize("name", sorted(workers()))
    def test_production_settings(self, name: str) -> None:
        """Workers keep state in RocksDB, log JSON, follow the wall clock, expose metrics."""
        env = {**dockerfile().env, **environment(workers()[name])}

        assert env["TRIAGE_STORE"] == "rocksdb://"
        assert env["TRIAGE_METRICS_HOST"] == "0.0.0.0"
        assert env["TRIAGE_LOG_FORMAT"] == "json"
        assert env["TRIAGE_CLOCK_MODE"] == "live"
        assert env["TRIAGE_METRICS_PORT"] in [str(p) for p in workers()[name].get("expose", [])]

    @pytest.mark.parametrize("name", sorted(workers()))
    def test_state_on_a_named_volume(self, name: str) -> None:
        """TRIAGE_DATA_DIR is a named volume, so state survives a container's replacement."""
        env = {**dockerfile().env, **environment(workers()[name])}
        volume_targets = {m.target for m in mounts(workers()[name]) if m.kind == "volume"}

        assert env["TRIAGE_DATA_DIR"] in volume_targets

    def test_state_volumes_are_not_shared(self) -> None:
        """Each worker has its own state volume (two RocksDB owners of one directory clash)."""
        owners: dict[str, list[str]] = {}
        for name, service in workers().items():
            for mount in mounts(service):
                if mount.kind == "volume":
                    owners.setdefault(mount.source, []).append(name)

        assert {v: o for v, o in owners.items() if len(o) > 1} == {}

    @pytest.mark.parametrize("name", sorted(workers()))
    def test_start_after_provisioning(self, name: str) -> None:
        """A worker starts once the topics service has completed successfully."""
        depends = workers()[name]["depends_on"]
        provisioner = next(n for n, s in services().items() if command(s) == ["topics", "create"])

        assert depends[provisioner]["condition"] == "service_completed_successfully"

    @pytest.mark.parametrize("name", sorted(workers()))
    def test_graceful_stop(self, name: str) -> None:
        """Workers run under an init, restart on failure, and get time to commit on stop."""
        service = workers()[name]

        assert service.get("init") is True
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}
        assert "stop_grace_period" in service


class TestKafka:
    def test_three_nodes_with_a_pinned_official_image(self) -> None:
        """Three nodes run apache/kafka at a fixed version tag."""
        nodes = kafka_nodes()

        assert len(nodes) == KAFKA_NODES
        for name, node in nodes.items():
            tag = str(node["image"]).split(":", 1)[1]
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: image tag {tag} is not pinned"
        assert len({n["image"] for n in nodes.values()}) == 1

    def test_kraft_quorum(self) -> None:
        """Each node is broker and controller; the voters are exactly the three nodes."""
        envs = {name: environment(node) for name, node in kafka_nodes().items()}
        voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs.values()}

        assert len(voters) == 1, "nodes disagree on the quorum"
        expected = set()
        for name, env in envs.items():
            assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
            controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
            port = re.search(rf"{controller}://[^,]*:(\d+)", env["KAFKA_LISTENERS"])
            assert port, f"{name}: no {controller} listener"
            expected.add(f"{env['KAFKA_NODE_ID']}@{name}:{port.group(1)}")
        assert set(voters.pop().split(",")) == expected
        assert len({e["KAFKA_NODE_ID"] for e in envs.values()}) == KAFKA_NODES
        assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1

    def test_replication(self) -> None:
        """Replication factor 3 everywhere, two in-sync replicas required to acknowledge."""
        for name, node in kafka_nodes().items():
            env = environment(node)
            assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3", name
            assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
            assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3", name
            assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "3", name
            assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2", name
        for name, service in services().items():
            if builds_triage(service):
                assert environment(service)["TRIAGE_REPLICATION_FACTOR"] == "3", name

    def test_advertised_listeners_name_the_node(self) -> None:
        """Each node advertises its own service name on the listener other services use."""
        for name, node in kafka_nodes().items():
            env = environment(node)
            inter = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
            assert f"{inter}://{name}:" in env["KAFKA_ADVERTISED_LISTENERS"]

    def test_bootstrap_names_every_node(self) -> None:
        """TRIAGE_KAFKA_BOOTSTRAP lists every node on its advertised internal listener."""
        advertised = set()
        for name, node in kafka_nodes().items():
            env = environment(node)
            inter = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
            found = re.search(
                rf"{inter}://({re.escape(name)}:\d+)", env["KAFKA_ADVERTISED_LISTENERS"]
            )
            assert found
            advertised.add(found.group(1))
        for name, service in services().items():
            if builds_triage(service):
                bootstrap = environment(service)["TRIAGE_KAFKA_BOOTSTRAP"]
                assert set(bootstrap.split(",")) == advertised, name

    def test_data_on_named_volumes(self) -> None:
        """Each node keeps its log directory on its own named volume."""
        sources = []
        for name, node in kafka_nodes().items():
            log_dirs = environment(node)["KAFKA_LOG_DIRS"]
            on_volume = [m for m in mounts(node) if m.kind == "volume" and m.target == log_dirs]
            assert on_volume, f"{name}: {log_dirs} is not on a named volume"
            sources.append(on_volume[0].source)
        assert len(set(sources)) == KAFKA_NODES

    def test_no_automatic_topic_creation(self) -> None:
        """Topics exist because provisioning created them, never because of a typo."""
        for node in kafka_nodes().values():
            assert environment(node)["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


class TestOrchestration:
    def test_dependencies_exist(self) -> None:
        """Every depends_on names a service of this file."""
        for name, service in services().items():
            for dependency in service.get("depends_on", {}):
                assert dependency in services(), f"{name} depends on unknown {dependency}"

    def test_healthy_dependencies_have_health_checks(self) -> None:
        """A `service_healthy` condition waits on a service that has a health check."""
        for name, service in services().items():
            for dependency, rule in (service.get("depends_on") or {}).items():
                if isinstance(rule, dict) and rule.get("condition") == "service_healthy":
                    check = services()[dependency].get("healthcheck", {})
                    assert check.get("test"), (name, dependency)
                    assert not check.get("disable"), (name, dependency)

    def test_long_running_services(self) -> None:
        """Every service but the one-shot provisioning restarts by itself and is health-checked."""
        for name, service in services().items():
            if command(service) == ["topics", "create"]:
                assert service.get("healthcheck", {}).get("disable") is True
                continue
            assert service.get("restart") in {"unless-stopped", "always"}, name
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"

    def test_kafka_waits_for_a_healthy_cluster(self) -> None:
        """Provisioning starts once every Kafka node is healthy."""
        provisioner = next(s for s in services().values() if command(s) == ["topics", "create"])

        assert {
            n
            for n, rule in provisioner["depends_on"].items()
            if rule["condition"] == "service_healthy"
        } == set(kafka_nodes())

    def test_published_ports_are_local(self) -> None:
        """Ports published on the host bind 127.0.0.1: nothing is exposed to the network."""
        for name, service in services().items():
            for port in service.get("ports", []):
                spec = port if isinstance(port, str) else port.get("host_ip", "")
                assert str(spec).startswith("127.0.0.1"), f"{name}: {port}"


class TestPrometheus:
    @staticmethod
    def config() -> dict[str, Any]:
        """deploy/prometheus/prometheus.yml as mounted into the prometheus service."""
        data: dict[str, Any] = load_yaml(
            mounted_file("prometheus", "/etc/prometheus/prometheus.yml")
        )
        return data

    def targets(self) -> set[str]:
        """Every host:port Prometheus scrapes (static targets and DNS names)."""
        found = set()
        for job in self.config().get("scrape_configs", []):
            for static in job.get("static_configs", []):
                found.update(static.get("targets", []))
            for dns in job.get("dns_sd_configs", []):
                found.update(f"{n}:{dns.get('port', '')}" for n in dns.get("names", []))
        return found

    def test_scrapes_every_worker(self) -> None:
        """Each worker service is a scrape target on its metrics port."""
        default_port = dockerfile().env["TRIAGE_METRICS_PORT"]
        expected = {
            f"{name}:{environment(s).get('TRIAGE_METRICS_PORT', default_port)}"
            for name, s in workers().items()
        }

        assert expected <= self.targets()

    def test_targets_are_services(self) -> None:
        """Every scrape target is a service of this file (127.0.0.1 is Prometheus itself)."""
        strays = {t for t in self.targets() if t.rpartition(":")[0] not in services()}

        assert strays == set()

    def test_rule_files_are_mounted(self) -> None:
        """Every rule file Prometheus loads is mounted from the repository."""
        rule_files = self.config().get("rule_files", [])

        assert rule_files
        for rule_file in rule_files:
            target = PurePosixPath("/etc/prometheus") / rule_file
            assert mounted_file("prometheus", str(target)).is_file(), rule_file

    def test_alerts_go_to_alertmanager(self) -> None:
        """Prometheus sends its alerts to the alertmanager service."""
        alerting = self.config().get("alerting") or {}
        targets = {
            t
            for am in alerting.get("alertmanagers", [])
            for static in am.get("static_configs", [])
            for t in static.get("targets", [])
        }

        assert "alertmanager:9093" in targets


class TestAlertmanager:
    @staticmethod
    def config() -> dict[str, Any]:
        """deploy/alertmanager/alertmanager.yml as mounted into the alertmanager service."""
        data: dict[str, Any] = load_yaml(
            mounted_file("alertmanager", "/etc/alertmanager/alertmanager.yml")
        )
        return data

    def test_routes_name_defined_receivers(self) -> None:
        """Every route sends to a receiver that exists."""
        receivers = {r["name"] for r in self.config()["receivers"]}

        def walk(route: Mapping[str, Any]) -> Iterator[str]:
            if "receiver" in route:
                yield route["receiver"]
            for child in route.get("routes", []):
                yield from walk(child)

        assert set(walk(self.config()["route"])) <= receivers

    def test_secret_files_are_compose_secrets(self) -> None:
        """Every *_file the config reads is a secret the alertmanager service receives."""
        given = {
            f"/run/secrets/{s if isinstance(s, str) else s.get('target', s['source'])}"
            for s in services()["alertmanager"].get("secrets", [])
        }
        wanted = set()

        def walk(node: Any) -> None:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    if str(key).endswith("_file") and isinstance(value, str):
                        wanted.add(value)
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.config())
        assert wanted
        assert wanted <= given

    def test_inhibit_rules_name_real_alerts(self) -> None:
        """Alert names in inhibit rules exist in the Prometheus alert rules."""
        rules_file = mounted_file("prometheus", "/etc/prometheus/alerts.yml")
        alerts = {
            rule["alert"]
            for group in load_yaml(rules_file)["groups"]
            for rule in group["rules"]
            if "alert" in rule
        }
        named = set()
        for rule in self.config().get("inhibit_rules", []):
            for matcher in (*rule.get("source_matchers", []), *rule.get("target_matchers", [])):
                found = re.fullmatch(r'alertname="([^"]+)"', matcher.replace(" ", ""))
                if found:
                    named.add(found.group(1))

        assert named <= alerts


class TestGrafana:
    def provisioning(self, kind: str) -> list[dict[str, Any]]:
        """The provisioning YAML files of one kind (datasources, dashboards)."""
        directory = mounted_file("grafana", f"/etc/grafana/provisioning/{kind}")
        files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
        assert files, f"no {kind} provisioning file in {directory}"
        return [load_yaml(f) for f in files]

    def test_datasources_point_at_prometheus(self) -> None:
        """Provisioned Prometheus datasources use the prometheus service."""
        urls = [
            ds["url"]
            for data in self.provisioning("datasources")
            for ds in data.get("datasources", [])
            if ds.get("type") == "prometheus"
        ]

        assert urls
        for url in urls:
            assert re.match(r"https?://prometheus:9090/?$", url), url

    def test_dashboards_are_where_the_provider_looks(self) -> None:
        """The dashboard provider reads the directory the dashboards are mounted at."""
        paths = [
            provider["options"]["path"]
            for data in self.provisioning("dashboards")
            for provider in data.get("providers", [])
        ]

        assert paths
        for path in paths:
            directory = mounted_file("grafana", path)
            assert directory.is_dir(), path
            assert any(directory.glob("*.json")), f"no dashboard in {path}"


class TestDockerfile:
    def test_base_image(self) -> None:
        """Every stage builds on python:3.11-slim."""
        resolved = [
            re.sub(r"\$\{PYTHON_IMAGE\}", "python:3.11-slim", stage.split(" AS ")[0])
            for stage in dockerfile().stages
        ]
        assert {stage.split()[0] for stage in resolved} == {"python:3.11-slim"}

    def test_runs_as_an_unprivileged_user(self) -> None:
        """The final stage switches to a user that is not root."""
        users = dockerfile().all("USER")

        assert users
        assert users[-1].split(":")[0] not in {"root", "0"}

    def test_entrypoint_and_command(self) -> None:
        """`triage` is the entrypoint and `worker` the default command."""
        assert dockerfile().exec_form("ENTRYPOINT") == ["triage"]
        assert dockerfile().cmd == ["worker"]

    def test_exposes_and_checks_metrics(self) -> None:
        """The metrics port is exposed and the health check asks /metrics for it."""
        port = dockerfile().env["TRIAGE_METRICS_PORT"]
        health = dockerfile().all("HEALTHCHECK")

        assert port in " ".join(dockerfile().all("EXPOSE")).split()
        assert health
        assert "/metrics" in health[-1]
        assert "TRIAGE_METRICS_PORT" in health[-1]

    def test_copied_sources_are_in_the_build_context(self) -> None:
        """Everything the Dockerfile copies from the context exists and is not ignored."""
        patterns = [
            line.strip()
            for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
        assert patterns[0] == "*", ".dockerignore is expected to be an allow-list"
        text = DOCKERFILE.read_text(encoding="utf-8")
        sources = [
            source
            for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.MULTILINE)
            for source in line.split()[:-1]
            if not source.startswith("--")
        ]
        assert sources
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


class TestExamplesAndGuide:
    @pytest.mark.parametrize("path", sorted((ROOT / "deploy").rglob("*.env.example")))
    def test_env_examples_are_settings(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Example worker environments name real settings, with values the model accepts."""
        for key in list(os.environ):
            if key.upper().startswith("TRIAGE_"):
                monkeypatch.delenv(key)
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                assert key in TRIAGE_VARIABLES, f"{path.name}: {key} is not a setting"
                monkeypatch.setenv(key, value)

        assert TriageSettings().kafka_bootstrap is not None

    def test_every_alert_has_a_runbook_entry(self) -> None:
        """The operations guide links every alert to an anchor that exists in the runbook."""
        rules = load_yaml(ROOT / "deploy" / "prometheus" / "alerts.yml")
        alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
        guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
        runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")

        for alert in alerts:
            anchor = alert["annotations"]["runbook_url"].partition("#")[2]
            row = next(
                (ln for ln in guide.splitlines() if ln.startswith(f"| `{alert['alert']}`")), ""
            )
            assert f"runbook.md#{anchor}" in row, (
                f"operations.md: no runbook row for {alert['alert']}"
            )
            assert f'<a id="{anchor}">' in runbook or f"{{#{anchor}}}" in runbook, anchor

    @pytest.mark.parametrize(
        "document", ["docs/operations.md", "deploy/kafka/acls.md", "tests/deploy/data/README.md"]
    )
    def test_relative_links_resolve(self, document: str) -> None:
        """Every relative link of the guide and the ACL plan names a file that exists."""
        path = ROOT / document
        links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8"))

        for link in links:
            if "://" not in link:
                assert (path.parent / link).exists(), f"{document}: {link}"
