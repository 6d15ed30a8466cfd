"""Progress of a run on the terminal, from the typed events.

On a TTY: step lines scroll, and below them one live line per node (state, last log line, elapsed) is redrawn in
place, refreshed every second by a ticker so elapsed times move during long waits. Not on a TTY (CI, pipes,
``--detach`` logs): plain lines, one per event that matters.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

from .events import (CollectDone, Event, Failure, JobProgress, JobStarted, NodeReady, StepEnded, StepStarted)
from .runs import format_duration


class Progress:
    def __init__(self, stream=None, tty: bool | None = None, verbose: bool = False):
        self.out = stream or sys.stderr
        self.tty = self.out.isatty() if tty is None else tty
        self.verbose = verbose
        self.nodes: dict[str, dict] = {}
        self.drawn = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        if self.tty:
            self._ticker = threading.Thread(target=self._tick, name="gpuops-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._ticker:
            self._ticker.join(timeout=2)
        with self.lock:
            self._redraw()
            self.drawn = 0  # leave the final node lines on screen
        return False

    def _tick(self):
        while not self._stop.wait(1.0):
            with self.lock:
                if self.nodes:
                    self._redraw()

    # ------------------------------------------------------------------ events
    def __call__(self, ev: Event) -> None:
        with self.lock:
            line = self._apply(ev)
            if line is None:
                return
            if self.tty:
                self._clear()
                self.out.write(line + "\n")
                self._redraw()
            else:
                self.out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            self.out.flush()

    def _node(self, host: str) -> dict:
        return self.nodes.setdefault(host, {"state": "?", "line": "", "since": time.monotonic()})

    def _apply(self, ev: Event) -> str | None:
        """Update node state; return the line to print for this event (None: node block update only)."""
        if isinstance(ev, StepStarted):
            return f"▶ {ev.name}" if ev.kind == "play" else (f"  · {ev.name}" if self.verbose else None)
        if isinstance(ev, StepEnded):
            if ev.kind != "play":
                return None
            return f"{'✗' if ev.failed else '✓'} {ev.name} ({format_duration(ev.seconds)})"
        if isinstance(ev, NodeReady):
            n = self._node(ev.name)
            n.update(state="ready", line=f"{ev.gpu_count or '?'}x {ev.gpu_model} {ev.provider} "
                                          f"{ev.ssh_user}@{ev.ssh_host}:{ev.ssh_port}", since=time.monotonic())
            return None if self.tty else f"node {ev.name} ready ({n['line']})"
        if isinstance(ev, JobStarted):
            n = self._node(ev.host)
            n.update(state="running", line=f"job {ev.job_id}", since=time.monotonic())
            return None if self.tty else f"[{ev.host}] job {ev.job_id} started ({ev.attach_command})"
        if isinstance(ev, JobProgress):
            n = self._node(ev.host)
            n.update(state=ev.state if not ev.done else f"{ev.state} (exit {ev.exit_code})", line=ev.last_line)
            return None if self.tty else f"[{ev.host}] {n['state']}, waited {ev.waited} | {ev.last_line}"
        if isinstance(ev, CollectDone):
            n = self._node(ev.host)
            n.update(state="collected", line=f"{ev.files} files -> {ev.dest}")
            return None if self.tty else f"[{ev.host}] collected {ev.files} files into {ev.dest}"
        if isinstance(ev, Failure):
            what = "unreachable" if ev.unreachable else "failed"
            msg = ev.msg.strip().splitlines()
            return f"✗ [{ev.host}] {ev.task} {what}: {msg[0] if msg else ''}" + (
                "\n    " + "\n    ".join(msg[1:12]) if len(msg) > 1 else "")
        return None

    # ------------------------------------------------------------------ the live block
    def _clear(self):
        if self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _redraw(self):
        if not self.tty:
            return
        self._clear()
        width = shutil.get_terminal_size((120, 20)).columns - 1
        now = time.monotonic()
        for host, n in self.nodes.items():
            text = f"  {host:<20} {n['state']:<12} {format_duration(now - n['since']):>7}  {n['line']}"
            self.out.write(text[:width] + "\n")
        self.drawn = len(self.nodes)
        self.out.flush()
