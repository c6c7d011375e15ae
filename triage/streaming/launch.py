"""Starting a worker as a child process (demo, benchmarks, tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from triage.broker.embedded import child_guard
from triage.settings import TriageSettings


def worker_environment(settings: TriageSettings) -> dict[str, str]:
    """The environment that gives a child ``triage worker`` exactly ``settings``.

    Other ``TRIAGE_*`` variables of this process are dropped; secrets are
    revealed here, into the child's environment only.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TRIAGE_{name.upper()}"] = str(value)
    return env


def spawn_worker(settings: TriageSettings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m triage worker`` for ``settings``; its output goes to ``log_path``.

    The child dies with this process (Linux, main thread), so Ctrl-C or a crash
    never leaves a worker behind. When it does, it gets its own process group, like
    the embedded broker: a Ctrl-C in the terminal reaches this process only, which
    stops the child itself (:func:`stop_worker`) instead of finding it gone.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    guard = child_guard()
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "triage", "worker"],
            env=worker_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=guard,
            process_group=0 if guard else None,
        )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM (a graceful Faust shutdown), then SIGKILL if it takes too long."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
