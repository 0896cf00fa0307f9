"""A dependency-free progress bar with rate and ETA on stderr. On a terminal it redraws one
line; elsewhere (CI logs) it prints at most one line per tenth of the work."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    def __init__(
        self, total: int | None, label: str, unit: str = "steps", stream: TextIO | None = None
    ):
        """total=None: an open-ended counter (rate, no ETA), drawn on terminals only."""
        self.open_ended = total is None
        self.total = max(int(total or 1), 1)
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.monotonic()
        self.live = self.stream.isatty()
        self._last_tenth = -1

    def __call__(self, n: int = 1) -> None:
        self.update(n)

    def update(self, n: int = 1) -> None:
        self.done = self.done + n if self.open_ended else min(self.done + n, self.total)
        tenth = self.done * 10 // self.total
        if self.live:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif not self.open_ended and tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(self.line() + "\n")

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.open_ended:
            return f"{self.label}: {self.done:,} {self.unit} {rate:,.0f}/s elapsed {elapsed:,.0f}s"
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        filled = int(24 * self.done / self.total)
        bar = "#" * filled + "." * (24 - filled)
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} {self.unit} "
            f"{rate:,.0f}/s elapsed {elapsed:,.0f}s eta {eta:,.0f}s"
        )

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


class GraphProgress:
    """One display for a whole reproduction: training runs and claims done out of their totals,
    seed-steps per second and an ETA from the training still to do. On a terminal it redraws
    one line; elsewhere it writes a plain line when a run or a claim finishes, and at most one
    line a minute while training."""

    def __init__(self, runs: int, claims: int, seed_steps: int, stream: TextIO | None = None,
                 heartbeat: float = 60.0):
        self.runs, self.claims, self.total = runs, claims, seed_steps
        self.runs_done = self.claims_done = self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty()
        self.start = self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # a line at least every `heartbeat` seconds, also while nothing finishes
        self._beat = threading.Thread(target=self._beating, args=(heartbeat,), daemon=True)
        self._beat.start()

    def _beating(self, every: float) -> None:
        while not self._stop.wait(every):
            self._write(self.line(), force=False)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = max(self.total - self.done, 0)
        eta = f"{left / rate / 60:,.1f} min" if rate > 0 and left else "-"
        return (f"runs {self.runs_done}/{self.runs}, claims {self.claims_done}/{self.claims}, "
                f"{rate:,.0f} seed-steps/s, training eta {eta}, elapsed {elapsed / 60:,.1f} min")

    def _write(self, text: str, force: bool) -> None:
        with self._lock:
            now = time.monotonic()
            if self.live:
                self.stream.write("\r\033[K" + text)
                self.stream.flush()
            elif force or now - self._last >= 60:
                self.stream.write(text + "\n")
                self.stream.flush()
                self._last = now

    def seed_steps(self, n: int) -> None:
        """Also called from a cluster client's event thread, hence the lock."""
        with self._lock:
            self.done += n
        self._write(self.line(), force=False)

    def run_done(self) -> None:
        self.runs_done += 1
        self._write(self.line(), force=True)

    def claim_done(self, claim_id: str, verdict: str) -> None:
        self.claims_done += 1
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K")
            self.stream.write(f"{claim_id}: {verdict}\n")
        self._write(self.line(), force=True)

    def close(self) -> None:
        self._stop.set()
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
