"""The progress line of long-running commands: redrawn in place at most every 0.25 s on a terminal, a plain
heartbeat line every 10 s elsewhere, and the summary unchanged where no terminal reads it."""

from __future__ import annotations

import io
from pathlib import Path

from strom.commands.progress import PLAIN_INTERVAL_S, REDRAW_INTERVAL_S, Progress, file_fraction
from tests.support.clock import FakeClock


def progress(interactive: bool, total: int | None = None) -> tuple[Progress, io.StringIO, FakeClock]:
    """A Progress on a string stream, timed by a fake clock (milliseconds, read as seconds)."""
    stream, clock = io.StringIO(), FakeClock()
    bar = Progress("produced", stream, interactive=interactive, total=total, clock=lambda: clock() / 1000)
    return bar, stream, clock


def test_terminal_line_is_redrawn_in_place_with_rate_and_throttled() -> None:
    bar, out, clock = progress(True, total=1000)
    bar.update(10)
    assert out.getvalue() == ""  # nothing due yet
    clock.advance(int(REDRAW_INTERVAL_S * 1000))
    bar.update(250)
    assert out.getvalue() == "\rstrom: produced 250/1,000 records, 1,000 records/s (25%)\x1b[K"
    bar.update(260)  # same instant: not redrawn
    clock.advance(500)
    bar.update(760)
    assert out.getvalue().endswith("\rstrom: produced 760/1,000 records, 1,020 records/s (76%)\x1b[K")
    assert "\n" not in out.getvalue()


def test_terminal_summary_replaces_the_line_with_the_overall_rate() -> None:
    bar, out, clock = progress(True)
    clock.advance(2000)
    bar.update(500)
    bar.note("strom: waiting")
    clock.advance(2000)
    bar.finish("strom: produced 1000 records to t", 1000)
    text = out.getvalue()
    assert text.endswith(
        "\r\x1b[Kstrom: waiting\n\rstrom: produced 1000 records to t in 4.0 s, 250 records/s\x1b[K\n"
    )


def test_elsewhere_plain_heartbeat_lines_and_the_summary_unchanged() -> None:
    bar, out, clock = progress(False)
    clock.advance(int(REDRAW_INTERVAL_S * 1000))
    bar.update(100)
    assert out.getvalue() == ""
    clock.advance(int(PLAIN_INTERVAL_S * 1000))
    bar.update(20_000)
    bar.clear()
    bar.finish("strom: produced 20000 records to t", 20_000)
    assert out.getvalue() == (
        "strom: produced 20,000 records, 1,951 records/s\nstrom: produced 20000 records to t\n"
    )
    assert "\r" not in out.getvalue()


def test_clear_erases_a_drawn_line_before_an_error_message() -> None:
    bar, out, clock = progress(True)
    bar.clear()
    assert out.getvalue() == ""
    clock.advance(1000)
    bar.update(5)
    bar.clear()
    assert out.getvalue().endswith("\x1b[K\r\x1b[K")


def test_share_of_a_regular_file_read_is_known_and_of_a_pipe_not(tmp_path: Path) -> None:
    data = tmp_path / "lines.txt"
    data.write_text("x" * 100)
    with data.open() as stream:
        fraction = file_fraction(stream)
        assert fraction is not None and fraction() == 0.0
        stream.read(1)
        assert fraction() == 1.0  # read-ahead took the whole small file
    assert file_fraction(io.StringIO("x")) is None
