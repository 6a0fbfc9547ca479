"""Output rendering shared by commands: table (human), json, yaml (machines). No business logic."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Iterable, Sequence

import click
import yaml


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


def progress_printer(total: int, stream=None):
    stream = stream or sys.stderr
    state = {"done": 0}

    def report(event: str, node, outcome) -> None:
        if event == "start":
            return
        state["done"] += 1
        status = {"done": "ok", "fail": "FAILED", "skip": "skipped"}[event]
        seconds = f" ({outcome.seconds:.1f}s)" if outcome and outcome.seconds else ""
        detail = f": {outcome.error}" if outcome and outcome.error and event != "done" else ""
        click.echo(f"  [{state['done']}/{total}] {node} {status}{seconds}{detail}", file=stream)

    return report
