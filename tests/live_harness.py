"""The live parts on one machine for tests: the dev broker, the PLC simulator on free ports, `interlock run` processes,
and the firmware-change incident published to Kafka in pieces that share one time shift."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import msgspec

from dataflows.kafka_dump import read_topic
from schemas.envelope import read_envelope
from simulators.live_replay import publish_recording
from simulators.plc_sim import PlcSimulator, plc_rows_from_recording, plc_tags_from_recording

ROOT = Path(__file__).resolve().parents[1]
INCIDENT = ROOT / "simulators" / "incidents" / "firmware_change.jsonl"
INTERLOCK = [sys.executable, "-m", "dataflows.cli"]
INCIDENT_PORTS = {"PLC-3": 5020, "PLC-4": 5021, "PLC-5": 5022}


class SimulatedPlcs:
    """The incident's PLCs served on free ports from a thread of the test process."""

    def __init__(self) -> None:
        rows = [msgspec.structs.replace(row, modbus=msgspec.structs.replace(row.modbus, port=0))
                for row in plc_rows_from_recording(INCIDENT)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = self.call(self._make(rows, plc_tags_from_recording(INCIDENT)))
        self.call(self.sim.start())
        self.ports = {plc: self.sim.modbus_address(plc)[1] for plc in INCIDENT_PORTS}

    @staticmethod
    async def _make(rows, tags) -> PlcSimulator:
        return PlcSimulator(rows, tags=tags)

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def enable(self, plc: str, equipment: str) -> bool:
        return self.sim.enable(plc, equipment)

    def close(self) -> None:
        self.call(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def incident_lines(ports: dict[str, int]) -> list[bytes]:
    """The incident's recording lines with its PLC rows pointing at the simulator's ports."""
    text = INCIDENT.read_bytes()
    for plc, port in INCIDENT_PORTS.items():
        text = text.replace(f'\\"port\\":{port},'.encode(), f'\\"port\\":{ports[plc]},'.encode())
    return text.splitlines()


def split_at(lines: list[bytes], seconds: float) -> tuple[list[bytes], list[bytes]]:
    """The lines before and from `seconds` after the first record (recording order is time order here)."""
    first = read_envelope(lines[0], 1, 0).ts
    cut = next((i for i, line in enumerate(lines) if read_envelope(line, i + 1, 0).ts >= first + seconds * 1000), len(lines))
    return lines[:cut], lines[cut:]


class Publisher:
    """Publishes pieces of one recording with one time shift, so the pieces join up on the wall clock."""

    def __init__(self, bootstrap: str, folder: Path, speed: float) -> None:
        self.bootstrap = bootstrap
        self.folder = folder
        self.speed = speed
        self.start_ms: int | None = None
        self.first_ts: int | None = None
        self.pieces = 0

    def publish(self, lines: list[bytes], background: bool = False) -> threading.Thread | None:
        path = self.folder / f"piece-{self.pieces}.jsonl"
        self.pieces += 1
        path.write_bytes(b"\n".join(lines) + b"\n")
        piece_first = read_envelope(lines[0], 1, 0).ts
        if self.start_ms is None:
            self.start_ms = (time.time_ns() // 1_000_000 // 1000 + 1) * 1000
            self.first_ts = piece_first
        offset = piece_first - self.first_ts
        now_ms = self.start_ms + offset  # the same shift for every piece

        def run() -> None:
            publish_recording(str(path), self.bootstrap, speed=self.speed, rebase=True, now_ms=lambda: now_ms)

        if not background:
            run()
            return None
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


class InterlockProcess:
    """`interlock run` as a child process (so it can be killed with SIGKILL)."""

    def __init__(self, bootstrap: str, folder: Path, name: str = "run", extra: list[str] | None = None) -> None:
        self.log = open(folder / f"{name}.log", "ab")
        self.process = subprocess.Popen(
            [*INTERLOCK, "run", "--bootstrap", bootstrap, *(extra or [])],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.folder = folder
        self.name = name

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        wait_for(lambda: b"interlock live" in (self.folder / f"{self.name}.log").read_bytes(), timeout_s,
                 f"{self.name} to start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.05) -> float:
    """Seconds it took for `condition` to hold; fails the test naming `what` after `timeout_s`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"waited {timeout_s} s for {what}")
        time.sleep(every_s)
    return time.monotonic() - started


def commands_on_kafka(bootstrap: str) -> list[dict]:
    return sorted((msgspec.json.decode(v) for v in read_topic(bootstrap, "interlock.commands")), key=lambda c: c["ts"])


def faults_on_kafka(bootstrap: str) -> list[dict]:
    return [msgspec.json.decode(v) for v in read_topic(bootstrap, "interlock.faults")]
