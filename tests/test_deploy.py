"""The deploy/ files hold together: Prometheus config and alert rules pass promtool, Kafka topics match the
protocol, the topic script plans without a broker, and the cluster's run files start the right process."""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest

from dataflows.metrics import InterlockMetrics
from interlock.site import COMMANDS_TOPIC, EVIDENCE_TOPIC, FAULTS_TOPIC
from schemas.envelope import TOPICS

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
PROTOCOL_TOPICS = set(TOPICS) | {COMMANDS_TOPIC, FAULTS_TOPIC, EVIDENCE_TOPIC}
TABLES = {"cmdb.devices", "gis.zones", "hr.qualifications", "ptw.permits"}

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not on PATH (Debian package `prometheus`)")


def run(*command: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def topics_file() -> dict:
    with open(DEPLOY / "kafka" / "topics.toml", "rb") as handle:
        return tomllib.load(handle)


def create_topics_module():
    spec = importlib.util.spec_from_file_location("create_topics", DEPLOY / "kafka" / "create_topics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_promtool
def test_prometheus_config_passes_promtool_check_config():
    result = run("promtool", "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rules_pass_promtool_check_rules():
    result = run("promtool", "check", "rules", str(PROMETHEUS / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rule_unit_tests_pass():
    result = run("promtool", "test", "rules", str(PROMETHEUS / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_use_only_metrics_the_interlock_exports():
    metrics = InterlockMetrics()
    metrics.add_plc("PLC-1")
    metrics.set_consumer_lag("gas.readings", 0, 0)
    families = list(metrics.registry.collect())
    exported = {family.name for family in families} | {sample.name for family in families for sample in family.samples}
    used = set(re.findall(r"\binterlock_[a-z_]+", (PROMETHEUS / "rules.yml").read_text(encoding="utf-8")))

    assert used and used <= exported, sorted(used - exported)


def test_topics_file_lists_exactly_the_protocol_topics():
    assert set(topics_file()["topics"]) == PROTOCOL_TOPICS


def test_the_four_tables_are_compacted_and_every_stream_including_ptw_actions_is_not():
    topics = topics_file()["topics"]

    for name, topic in topics.items():
        policy = topic["config"]["cleanup.policy"]
        assert policy == ("compact" if name in TABLES else "delete"), name
        assert topic["kind"] == ("table" if name in TABLES else "stream"), name
        if name not in TABLES:
            assert int(topic["config"]["retention.ms"]) > 0, name


def test_every_topic_has_three_replicas_and_needs_two_in_sync():
    plan = create_topics_module().load_plan()

    assert {topic.name for topic in plan} == PROTOCOL_TOPICS
    for topic in plan:
        assert topic.replication_factor == 3 and topic.config["min.insync.replicas"] == "2", topic.name


def test_create_topics_dry_run_prints_the_plan_without_a_broker():
    result = run(sys.executable, str(DEPLOY / "kafka" / "create_topics.py"), "--dry-run",
                 "--bootstrap", "127.0.0.1:1")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "plan: 12 topics (dry run, no broker contacted)"
    assert any(line.strip().startswith("ptw.permits (table): partitions=3 replication=3 cleanup.policy=compact")
               for line in lines)
    assert all(any(line.strip().startswith(f"{name} (") for line in lines) for name in PROTOCOL_TOPICS)


def test_create_topics_creates_only_missing_topics_and_reports_differing_ones(capsys):
    module = create_topics_module()
    plan = [topic for topic in module.load_plan() if topic.name in ("gas.readings", "ptw.permits", "ptw.actions")]
    permits, actions = (next(t for t in plan if t.name == name) for name in ("ptw.permits", "ptw.actions"))

    def done(value):
        future = Future()
        future.set_result(value)
        return future

    def existing(partitions: int):
        return SimpleNamespace(partitions={p: SimpleNamespace(replicas=[1, 2, 3]) for p in range(partitions)})

    configs = {
        "ptw.permits": {key: SimpleNamespace(value=value) for key, value in permits.config.items()},
        "ptw.actions": {key: SimpleNamespace(value=value) for key, value in actions.config.items()}
                       | {"retention.ms": SimpleNamespace(value="604800000")},
    }

    class FakeAdmin:
        created: list[str] = []

        def list_topics(self, timeout):
            return SimpleNamespace(topics={"ptw.permits": existing(3), "ptw.actions": existing(3)})

        def create_topics(self, topics, request_timeout):
            self.created.extend(t.topic for t in topics)
            return {t.topic: done(None) for t in topics}

        def describe_configs(self, resources, request_timeout):
            return {resource: done(configs[resource.name]) for resource in resources}

    admin = FakeAdmin()
    status = module.apply_plan(plan, admin, timeout_s=1.0)

    out = capsys.readouterr().out.splitlines()
    assert admin.created == ["gas.readings"]
    assert "ok ptw.permits" in out
    assert "DIFFERS ptw.actions: retention.ms=604800000, planned 34560000000" in out
    assert status == 1


def test_compose_file_runs_three_kraft_nodes_of_a_pinned_kafka_image():
    text = (DEPLOY / "compose" / "kafka-kraft.yml").read_text(encoding="utf-8")

    assert re.findall(r"^\s*image:\s*(\S+)", text, re.M) == ["apache/kafka:3.9.1"]
    assert re.findall(r'KAFKA_NODE_ID: "(\d)"', text) == ["1", "2", "3"]
    assert 'KAFKA_CONTROLLER_QUORUM_VOTERS: "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"' in text
    assert "\t" not in text


def test_compose_file_parses_as_yaml_with_three_services():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (not a dependency of the project)")
    document = yaml.safe_load((DEPLOY / "compose" / "kafka-kraft.yml").read_text(encoding="utf-8"))

    assert set(document["services"]) == {"kafka-1", "kafka-2", "kafka-3"}
    assert all(service["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
               for service in document["services"].values())


def test_systemd_unit_restarts_always_and_never_gives_up():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "interlock@.service", encoding="utf-8")

    assert unit["Service"]["Restart"] == "always"
    assert unit["Service"]["RestartSec"] == "1"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert unit["Service"]["ExecStart"] == "/opt/interlock/deploy/bytewax/run-process.sh %i"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not on PATH")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    text = (DEPLOY / "systemd" / "interlock@.service").read_text(encoding="utf-8")
    (tmp_path / "interlock@.service").write_text(
        text.replace("/opt/interlock/deploy/", f"{DEPLOY}/"), encoding="utf-8")

    result = run("systemd-analyze", "verify", "./interlock@0.service", cwd=tmp_path)

    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_init_recovery_creates_the_partitions_once(tmp_path):
    env = os.environ | {"INTERLOCK_PYTHON": sys.executable}
    recovery = tmp_path / "recovery"
    script = str(DEPLOY / "bytewax" / "init-recovery.sh")

    first = run(script, str(recovery), "3", env=env)
    second = run(script, str(recovery), "3", env=env)

    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in recovery.glob("part-*.sqlite3")) == ["part-0.sqlite3", "part-1.sqlite3", "part-2.sqlite3"]
    assert second.returncode == 0 and "nothing done" in second.stdout, second.stderr


def run_process(tmp_path: Path, process_id: str, partitions: bool = True, **settings: str) -> subprocess.CompletedProcess:
    (tmp_path / "recovery").mkdir(exist_ok=True)
    if partitions:
        (tmp_path / "recovery" / "part-0.sqlite3").touch()
    (tmp_path / "hosts.txt").write_text("10.0.0.1:2101\n10.0.0.2:2101\n", encoding="utf-8")
    env = os.environ | {
        "INTERLOCK_BOOTSTRAP": "kafka-1:9092", "INTERLOCK_CONFIG": "/etc/interlock/site.toml",
        "INTERLOCK_ADDRESSES": str(tmp_path / "hosts.txt"), "INTERLOCK_RECOVERY_DIR": str(tmp_path / "recovery"),
        "INTERLOCK_METRICS_PORT_BASE": "9464", "INTERLOCK_SNAPSHOT_INTERVAL_S": "5", "INTERLOCK_DRY_RUN": "1",
        **settings,
    }
    return run(str(DEPLOY / "bytewax" / "run-process.sh"), process_id, env=env)


def test_run_process_starts_interlock_run_with_the_process_metrics_port(tmp_path):
    result = run_process(tmp_path, "1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "BYTEWAX_SNAPSHOT_INTERVAL=5", "BYTEWAX_RECOVERY_BACKUP_INTERVAL=0", "interlock", "run",
        "--bootstrap", "kafka-1:9092", "--metrics-port", "9465", "--recovery-dir", str(tmp_path / "recovery"),
        "--config", "/etc/interlock/site.toml", "--process-id", "1", "--addresses", str(tmp_path / "hosts.txt"),
        "--snapshot-interval", "5",
    ]


def test_run_process_passes_the_decision_shards_when_they_are_set(tmp_path):
    assert run_process(tmp_path, "0", INTERLOCK_SHARDS="6").stdout.split()[-2:] == ["--shards", "6"]
    assert "--shards" not in run_process(tmp_path, "0").stdout


def test_run_process_refuses_a_process_id_beyond_the_addresses_file(tmp_path):
    result = run_process(tmp_path, "2")

    assert result.returncode == 2 and "lists 2 processes" in result.stderr


def test_run_process_refuses_an_uninitialised_recovery_directory(tmp_path):
    result = run_process(tmp_path, "0", partitions=False)

    assert result.returncode == 3 and "init-recovery.sh" in result.stderr


def test_prometheus_scrapes_one_target_per_process_on_the_run_script_ports():
    text = (PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8")

    assert re.findall(r'targets: \["localhost:(\d+)"\]\s+labels:\s+process: "(\d)"', text) == [("9464", "0"), ("9465", "1")]
