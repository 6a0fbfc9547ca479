"""Output rendering shared by commands: table (human), json, yaml (machines), and live progress.

Stage: edge (rendering). Callers: every command module of `gcloudctl.cli`. No business logic:
it formats values it is given and never decides what to show.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any, Callable, Iterable, Sequence

import click
import yaml

from gcloudctl.i18n import N_, gettext


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str)
    return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False, allow_unicode=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers)] + [line(r) for r in rows])


def emit(fmt: str, data: Any, human: Callable[[], str]) -> None:
    """Print `data` as json/yaml, or the human rendering for `table`."""
    click.echo(dump(data, fmt) if fmt in ("json", "yaml") else human())


# How a finished change is called on its progress line, by the executor's event.
EVENT_WORDS = {"done": N_("ok"), "fail": N_("FAILED"), "skip": N_("skipped")}


class ProgressPrinter:
    """The executor's progress callback (`gcloudctl.executor.ProgressFn`) for people.

    On a terminal: a live display (rich) of the changes in flight, each with the time it has
    been running — a server stays there while it boots — and one line per finished change
    printed above it. Not a terminal (CI logs, pipes) or TERM=dumb: no animation and no control
    codes, only the line per finished change. NO_COLOR turns colours off (either way).
    Thread-safe: the executor reports from its worker threads. `close()` ends the display; it
    also ends by itself once `total` changes have reported."""

    def __init__(self, total: int, stream=None, *, live: bool | None = None, environ=None):
        import os

        self.stream = stream or sys.stderr
        self.total = total
        self.done = 0
        env = os.environ if environ is None else environ
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.live = live if live is not None else (isatty and env.get("TERM") != "dumb")
        self._lock = threading.Lock()
        self._tasks: dict = {}
        self._progress = None
        self._started = False
        if self.live:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


            console = Console(file=self.stream, force_terminal=True, no_color=bool(env.get("NO_COLOR")),
                              highlight=False)
            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=console, transient=True, refresh_per_second=4)
            self._overall = self._progress.add_task(self._summary(), total=total)

    def _summary(self) -> str:
        return f"[{self.done}/{self.total}]"

    def __call__(self, event: str, node, outcome) -> None:
        with self._lock:
            if event == "start":
                if self._progress is not None:
                    if not self._started:
                        self._progress.start()
                        self._started = True
                    self._tasks[node] = self._progress.add_task(f"  {node}", total=None)
                return
            self.done += 1
            status = gettext(EVENT_WORDS[event])
            seconds = f" ({outcome.seconds:.1f}s)" if outcome and outcome.seconds else ""
            detail = f": {outcome.error}" if outcome and outcome.error and event != "done" else ""
            line = f"  [{self.done}/{self.total}] {node} {status}{seconds}{detail}"
            if self._progress is None:
                click.echo(line, file=self.stream)
                return
            task = self._tasks.pop(node, None)
            if task is not None:
                self._progress.remove_task(task)
            self._progress.update(self._overall, completed=self.done, description=self._summary())
            style = {"done": None, "fail": "bold red", "skip": "yellow"}[event]
            from rich.text import Text

            self._progress.console.print(Text(line, style=style or ""))
            if self.done >= self.total:
                self._stop()

    def _stop(self) -> None:
        if self._progress is not None and self._started:
            self._progress.stop()
            self._started = False

    def close(self) -> None:
        with self._lock:
            self._stop()


def progress_printer(total: int, stream=None, *, live: bool | None = None, environ=None) -> ProgressPrinter:
    """The progress callback for `total` changes on `stream` (stderr): see `ProgressPrinter`."""
    return ProgressPrinter(total, stream, live=live, environ=environ)
