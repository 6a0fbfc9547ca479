"""Specification of live progress (`gcloudctl.cli.render.ProgressPrinter`, the executor's
progress callback): on a terminal, the changes in flight are shown while they run (a booting
server with its elapsed time) and a line per finished change; not a terminal: only the lines,
no control codes; NO_COLOR: no colours."""

from __future__ import annotations

import io
import re
import time
from types import SimpleNamespace

from gcloudctl.cli.render import progress_printer
from tests.fixtures.core import EXAMPLE

SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-9]m")


def outcome(seconds: float, error: str | None = None):
    return SimpleNamespace(seconds=seconds, error=error)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_prints_plain_lines():
    stream = io.StringIO()
    report = progress_printer(2, stream)
    report("start", "server.web-1", None)
    report("done", "server.web-1", outcome(31.5))
    report("fail", "floating_ip.web-1", outcome(0.4, "409 conflict"))
    assert stream.getvalue() == ("  [1/2] server.web-1 ok (31.5s)\n"
                                 "  [2/2] floating_ip.web-1 FAILED (0.4s): 409 conflict\n")


def test_terminal_shows_a_booting_server_while_it_runs():
    stream = Tty()
    report = progress_printer(1, stream, environ={})
    report("start", "server.web-1", None)
    time.sleep(0.6)  # the display refreshes 4 times a second
    during = stream.getvalue()
    assert "server.web-1" in during and "0:00:00" in during, "in flight, with its elapsed time"
    assert "ok" not in during
    report("done", "server.web-1", outcome(0.6))
    assert "[1/1] server.web-1 ok (0.6s)" in stream.getvalue()
    assert SGR_COLOUR.search(stream.getvalue()), "colours on a terminal"


def test_no_color_is_honoured():
    stream = Tty()
    report = progress_printer(1, stream, environ={"NO_COLOR": "1"})
    report("start", "server.web-1", None)
    report("fail", "server.web-1", outcome(2.0, "ERROR state"))
    assert "server.web-1 FAILED (2.0s): ERROR state" in stream.getvalue()
    assert not SGR_COLOUR.search(stream.getvalue())


def test_dumb_terminal_is_not_animated():
    stream = Tty()
    report = progress_printer(1, stream, environ={"TERM": "dumb"})
    report("start", "server.web-1", None)
    report("done", "server.web-1", outcome(1.0))
    assert "\x1b" not in stream.getvalue()


def test_apply_in_ci_logs_one_line_per_change(cli_on_fake, capsys):
    assert cli_on_fake("apply", str(EXAMPLE), "--yes") == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert len(re.findall(r"^  \[\d+/32\] ", err, re.M)) == 32


def test_progress_lines_in_vietnamese(cli_on_fake, capsys):
    """`--lang vi apply`: each change's line and the result line are Vietnamese (the lines are
    written while the executor's worker threads run the changes)."""
    assert cli_on_fake("--lang", "vi", "apply", str(EXAMPLE), "--yes") == 0
    captured = capsys.readouterr()
    assert re.search(r"\[32/32\] create \S+ xong \(", captured.err)
    assert " ok (" not in captured.err
    assert re.match(r"áp dụng xong: 32 thành công, 0 thất bại, 0 bỏ qua trong [0-9.]+ giây\.", captured.out)
