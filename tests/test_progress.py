"""art_explorer.progress: plain lines with fixed fields when the stream is no terminal."""

from __future__ import annotations

import io

from art_explorer.progress import PlainProgress, progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_not_carriage_returns() -> None:
    out = io.StringIO()
    bar = progress(range(5), "decode", unit="img", file=out, interval=0.0)
    assert isinstance(bar, PlainProgress)
    seen = list(bar)
    assert seen == [0, 1, 2, 3, 4]
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("decode  1/5 (20%)")
    assert lines[-1].startswith("decode  5/5 (100%)")
    assert all("img/s" in line for line in lines)


def test_interval_bounds_the_line_count_and_leave_prints_the_last() -> None:
    out = io.StringIO()
    for _ in progress(range(1000), "steps", file=out, interval=3600.0):
        pass
    assert len(out.getvalue().splitlines()) == 1
    assert out.getvalue().startswith("steps  1000/1000 (100%)")
    quiet = io.StringIO()
    for _ in progress(range(10), "steps", file=quiet, interval=3600.0, leave=False):
        pass
    assert quiet.getvalue() == ""


def test_manual_update_postfix_write_and_disable() -> None:
    out = io.StringIO()
    with progress(
        total=4, desc="epoch 1/2", unit="batch", file=out, interval=0.0
    ) as bar:
        bar.set_postfix({"loss": "0.4121"})
        bar.update(2)
        bar.write("a message")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch 1/2  2/4 (50%)") and lines[0].endswith(
        "loss 0.4121"
    )
    assert lines[1] == "a message"
    off = io.StringIO()
    for _ in progress(range(3), "x", file=off, interval=0.0, disable=True):
        pass
    assert off.getvalue() == ""


def test_a_terminal_gets_tqdm() -> None:
    from tqdm import tqdm

    bar = progress(range(3), "x", file=Tty())
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2]
