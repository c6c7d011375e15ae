"""The command line's conventions: one plain ``error:`` line for every mistake and
start-up failure, number options that refuse NaN and infinities, a quiet Ctrl-C, and a
broker that cannot be reached reported within the connect timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the player imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.broker.admin import wait_for_broker
    from triage.replay.player import make_producer

from triage.cli import cli, main
from triage.errors import BrokerError
from triage.params import FiniteFloatRange
from triage.replay.records import write_log
from triage.testing import make_report, record_of

NOT_FINITE = ["nan", "inf", "-inf", "1e400", "NaN", "Infinity"]


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the console entry point with ``args``: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["triage", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture(name="unused_address")
def _unused_address() -> str:
    """A loopback ``host:port`` where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(name="log_file")
def _log_file(tmp_path: Path) -> Path:
    """A one-record event log."""
    path = tmp_path / "log.jsonl"
    write_log(path, [record_of(make_report())])
    return path


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TRIAGE_*`` variable from the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("TRIAGE_"):
            monkeypatch.delenv(name)


def _params(group: click.Group) -> Iterator[tuple[str, click.Parameter]]:
    """Every option and argument of every command under ``group``: (command path, it)."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from ((f"{name} {sub}", p) for sub, p in _params(command))
            continue
        for param in command.params:
            yield name, param


class TestNumberOptions:
    def test_every_float_parameter_refuses_nan_and_infinities(self) -> None:
        """Each float-typed option or argument of every command uses the finite type (NaN
        passes any range check, and ``inf`` any lower bound)."""
        floats = [
            (command, param)
            for command, param in _params(cli)
            if isinstance(param.type, click.types.FloatParamType)
        ]
        plain = [
            f"{command} {param.opts[0]}"
            for command, param in floats
            if not isinstance(param.type, FiniteFloatRange)
        ]

        assert floats, "no float option found: the walk is broken"
        assert plain == []

    @pytest.mark.parametrize("value", NOT_FINITE)
    @pytest.mark.parametrize(
        "args",
        [
            ["generate", "-o", "{tmp}/x.jsonl", "--bad-rate"],
            ["demo", "--bad-rate"],
            ["soak", "--bad-rate"],
            ["bench", "--latency-seconds"],
            ["replay", "{log}", "--offline", "--delivery-timeout"],
        ],
        ids=["generate", "demo", "soak", "bench", "replay-delivery-timeout"],
    )
    def test_a_float_option_refuses_it_in_one_line(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        log_file: Path,
        args: list[str],
        value: str,
    ) -> None:
        """``--bad-rate nan`` and the like: one ``error:`` line, exit 2, nothing run."""
        filled = [a.format(tmp=tmp_path, log=log_file) for a in args]

        code, out, err = run_main(monkeypatch, capsys, *filled, value)

        assert code == 2
        assert out == ""
        assert err == f"error: Invalid value for '{args[-1]}': {value} is not a finite number\n"

    @pytest.mark.parametrize("value", NOT_FINITE)
    @pytest.mark.parametrize("command", ["replay", "demo"])
    def test_speed_refuses_it_in_one_line(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        log_file: Path,
        command: str,
        value: str,
    ) -> None:
        """``--speed nan`` or ``--speed inf`` is refused before anything is published."""
        args = [command, "--speed", value]
        if command == "replay":
            args += [str(log_file), "--bootstrap", "127.0.0.1:9"]

        code, out, err = run_main(monkeypatch, capsys, *args)

        assert code == 2
        assert out == ""
        assert err == f"error: --speed must be a finite number or 'max', not {value!r}\n"

    def test_finite_numbers_still_pass_and_ranges_still_hold(self) -> None:
        """The finite type keeps its range: 0.2 passes, 0.7 does not."""
        rate = FiniteFloatRange(0.0, 0.5)

        assert rate.convert("0.2", None, None) == 0.2
        with pytest.raises(click.BadParameter, match="not in the range"):
            rate.convert("0.7", None, None)


class TestInterrupt:
    def test_ctrl_c_exits_130_without_an_error_line(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A KeyboardInterrupt inside a command: status 130, no ``error:`` line."""

        def interrupted() -> None:
            raise KeyboardInterrupt

        monkeypatch.setitem(cli.commands, "sleepy", click.Command("sleepy", callback=interrupted))

        code, out, err = run_main(monkeypatch, capsys, "sleepy")

        assert code == 130
        assert "error" not in out + err


class TestUnreachableBroker:
    def test_wait_for_broker_names_the_address_and_its_source(self, unused_address: str) -> None:
        """Nothing listening: one message naming the address, the wait and the setting."""
        began = time.monotonic()

        with pytest.raises(BrokerError) as raised:
            wait_for_broker(unused_address, 0.5, source="TRIAGE_KAFKA_BOOTSTRAP")

        assert str(raised.value) == (
            f"cannot reach the Kafka broker at {unused_address} within 0.5 s"
            " (TRIAGE_KAFKA_BOOTSTRAP)"
        )
        assert time.monotonic() - began < 2.0

    def test_every_address_of_the_list_is_tried(self, unused_address: str) -> None:
        """A bootstrap list is named whole when none of its addresses answers."""
        both = f"{unused_address},127.0.0.1:9"

        with pytest.raises(BrokerError, match=f"at {both} within 0.3 s$"):
            wait_for_broker(both, 0.3)

    def test_the_producer_gives_up_within_its_connect_timeout(self, unused_address: str) -> None:
        """kafka-python waits 30 s for a first broker by default; the tools' producer
        waits the connect timeout, then says so in one line."""
        began = time.monotonic()

        with pytest.raises(BrokerError) as raised:
            make_producer(unused_address, connect_timeout=0.5, source="--bootstrap")

        assert str(raised.value) == (
            f"cannot reach the Kafka broker at {unused_address} within 0.5 s (--bootstrap)"
        )
        assert time.monotonic() - began < 3.0

    @pytest.mark.parametrize(
        "args",
        [
            ["publish", "{event}"],
            ["replay", "{log}"],
            ["topics", "create"],
            ["record", "--caught-up", "-o", "{tmp}/captured.jsonl"],
        ],
        ids=["publish", "replay", "topics-create", "record"],
    )
    def test_commands_fail_in_one_line_within_the_timeout(
        self,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        log_file: Path,
        unused_address: str,
        args: list[str],
    ) -> None:
        """Each command that talks to Kafka reports an unreachable ``--bootstrap`` in one
        line, after ``TRIAGE_KAFKA_CONNECT_TIMEOUT`` seconds, not kafka-python's 30."""
        event = tmp_path / "event.json"
        event.write_text(make_report().model_dump_json(), encoding="utf-8")
        filled = [a.format(event=event, log=log_file, tmp=tmp_path) for a in args]
        monkeypatch.setenv("TRIAGE_KAFKA_CONNECT_TIMEOUT", "0.5")
        began = time.monotonic()

        code, _out, err = run_main(monkeypatch, capsys, *filled, "--bootstrap", unused_address)

        assert code == 1
        assert err.splitlines()[-1] == (
            f"error: cannot reach the Kafka broker at {unused_address} within 0.5 s (--bootstrap)"
        )
        assert "Traceback" not in err
        assert time.monotonic() - began < 4.0

    def test_the_worker_exits_in_one_line(self, unused_address: str, tmp_path: Path) -> None:
        """``triage worker`` with a wrong TRIAGE_KAFKA_BOOTSTRAP: one line naming the
        address and the variable, exit 1, within the timeout (plus start-up)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
        env.update(
            TRIAGE_KAFKA_BOOTSTRAP=unused_address,
            TRIAGE_KAFKA_CONNECT_TIMEOUT="1",
            TRIAGE_METRICS_PORT="0",
            TRIAGE_WEB_PORT="0",
        )
        began = time.monotonic()

        result = subprocess.run(
            [sys.executable, "-m", "triage", "worker"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

        assert result.returncode == 1
        assert result.stderr == (
            f"error: cannot reach the Kafka broker at {unused_address} within 1 s"
            " (TRIAGE_KAFKA_BOOTSTRAP)\n"
        )
        assert time.monotonic() - began < 10.0
