"""Processes a chaos test kills and starts again: one command line, one log, the same
ports and state on every start, SIGKILL to stop (nothing is given back, as in a crash)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support.exporter import stop_process
from tests.support.standby import ReplicationPair


@dataclass
class Restartable:
    """A process started by :meth:`start`, killed by :meth:`kill`, started again the same."""

    name: str
    command: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] = lambda: True
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _out: IO[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        assert self.process is None or self.process.poll() is not None, f"{self.name} runs"
        self._out = self.log.open("ab")
        self._out.write(f"--- start {self.starts + 1} of {self.name}\n".encode())
        self._out.flush()
        self.process = subprocess.Popen(
            list(self.command),
            env={**os.environ, **self.env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready in {timeout}s:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, and wait until the kernel has reaped it (its sockets closed)."""
        assert self.process is not None and self.process.poll() is None, f"{self.name} is down"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self._out is not None:
            self._out.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process(self.process)
        if self._out is not None:
            self._out.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after the last ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Running: a zombie (killed, not reaped yet by whoever adopted it) holds nothing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def crash_standby(pair: ReplicationPair, timeout: float = 15) -> None:
    """SIGKILL the standby's postmaster and every process it forked at once, like a machine
    losing power; wait until all are gone."""
    pid = int((pair.standby / "postmaster.pid").read_text().split()[0])
    victims = [pid, *_children(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(v) for v in victims):
        if time.monotonic() > deadline:
            raise AssertionError(f"standby processes still alive after SIGKILL: {victims}")
        time.sleep(0.05)


def start_standby(pair: ReplicationPair) -> None:
    """Start the standby again (crash recovery, then streaming from the primary)."""
    pair._pg_ctl(pair.standby)
