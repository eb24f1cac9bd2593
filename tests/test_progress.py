"""Progress on stderr: plain lines off a terminal at a set pace, a bar on one, silent unless switched on."""

from __future__ import annotations

import io
import re

import pytest

from caveat import progress
from caveat.progress import phase, showing, subject


@pytest.fixture
def clock(monkeypatch):
    """A clock the test moves by hand: ``clock.now = 12.0``."""

    class Clock:
        now = 0.0

    monkeypatch.setattr(progress.time, "monotonic", lambda: Clock.now)
    return Clock


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for name in (progress.QUIET_ENV, progress.EVERY_ENV, progress.AFTER_ENV):
        monkeypatch.delenv(name, raising=False)


def plain_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("caveat: ")]


def test_plain_lines_at_most_every_interval_and_at_the_end(clock, capsys):
    """Defaults: nothing before 2 s, then a line at most every 10 s, and one at the end; stdout untouched."""
    with showing(command="calibrate"), subject("calibration"), phase("predict", total=1500) as bar:
        for now, done in [(0.5, 100), (2.0, 200), (5.0, 300), (12.0, 512), (13.0, 600), (30.0, 1500)]:
            clock.now = now
            bar.advance(done - bar.done)
    out, err = capsys.readouterr()
    assert out == ""
    assert plain_lines(err) == [
        "caveat: calibrate: predict on calibration 200/1500 (13%, 2 s, ETA 13 s)",
        "caveat: calibrate: predict on calibration 512/1500 (34%, 12 s, ETA 23 s)",
        "caveat: calibrate: predict on calibration 1500/1500 (100%, 30 s)",  # the end, once
    ]


def test_interval_from_the_environment(monkeypatch, capsys):
    """CAVEAT_PROGRESS_EVERY=0 and CAVEAT_PROGRESS_AFTER=0: a line per step, then the end."""
    monkeypatch.setenv(progress.EVERY_ENV, "0")
    monkeypatch.setenv(progress.AFTER_ENV, "0")
    with showing(), phase("attack", total=3) as bar:
        for _ in range(3):
            bar.advance(info="12 queries")
    out, err = capsys.readouterr()
    assert out == ""
    lines = plain_lines(err)
    assert len(lines) == 3 and lines[0].startswith("caveat: attack 1/3 (33%, 0 s")
    assert re.fullmatch(r"caveat: attack 3/3 \(100%, 0 s\)  12 queries", lines[-1])


def test_a_short_phase_prints_nothing(clock, capsys):
    with showing(), phase("predict", total=10) as bar:
        clock.now = 1.5
        bar.advance(10)
    assert capsys.readouterr().err == ""


def test_silent_unless_switched_on_and_under_caveat_quiet(monkeypatch, capsys):
    def run() -> str:
        with phase("predict", total=2, every=0, after=0) as bar:
            bar.advance(2)
        return capsys.readouterr().err

    assert run() == ""  # the library is quiet by default
    with showing():
        assert plain_lines(run()) == ["caveat: predict 2/2 (100%, 0 s)"]
        monkeypatch.setenv(progress.QUIET_ENV, "1")
        assert run() == ""
        monkeypatch.setenv(progress.QUIET_ENV, "0")
        assert run() != ""
    with showing(False):
        assert run() == ""
    assert not progress.is_shown()  # showing() put the switch back


def test_only_the_outer_phase_shows(capsys):
    """The predictions inside an attack do not interleave their own lines with the attack's."""
    with showing(), phase("greedy attack", total=2, every=0, after=0) as outer:
        for _ in range(2):
            with phase("predict", total=5, every=0, after=0) as inner:
                inner.advance(5)
            outer.advance()
    with showing(), phase("predict", total=1, every=0, after=0) as after:  # the next phase shows again
        after.advance()
    lines = plain_lines(capsys.readouterr().err)
    assert [line.split(" (")[0] for line in lines] == [
        "caveat: greedy attack 1/2",
        "caveat: greedy attack 2/2",
        "caveat: predict 1/1",
    ]


def test_a_failed_phase_adds_no_end_line_and_frees_the_slot(capsys):
    with showing(), pytest.raises(RuntimeError), phase("predict", total=4, every=0, after=0) as bar:
        bar.advance()
        raise RuntimeError("boom")
    (line,) = plain_lines(capsys.readouterr().err)
    assert line.startswith("caveat: predict 1/4 (25%, 0 s")
    with showing(), phase("train", total=1, every=0, after=0) as bar:
        bar.advance()
    assert plain_lines(capsys.readouterr().err)[0].startswith("caveat: train 1/1")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_rich_bar_not_plain_lines(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with showing(command="train"), phase("optimizer steps", total=4, every=0, after=0) as bar:
        for _ in range(4):
            bar.advance(info="loss 0.4100")
    shown = terminal.getvalue()
    assert "optimizer steps" in shown and "4/4" in shown and "loss 0.4100" in shown
    assert "caveat: train:" not in shown


def test_duration_reads_at_a_glance():
    assert [progress.duration(s) for s in (0.4, 59, 61, 3599, 7500)] == [
        "0 s",
        "59 s",
        "1 min 1 s",
        "59 min 59 s",
        "2 h 5 min",
    ]
