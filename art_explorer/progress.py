"""Progress reports a person can read: a tqdm bar on a terminal, plain lines in a log.

On a terminal (the stream is a TTY) `progress` is tqdm. Redirected to a file (`make
iterate > round.log`) a bar's carriage-return redraws pile up into thousands of
fragments, so there it prints one plain line with fixed fields at most every
`interval` seconds and one when it closes:

    epoch 3/40  120/500 (24%)  31 s  3.9 batch/s  loss 0.4121

Both kinds take the same calls, so a caller never asks which one it has:

    for x in progress(items, "rendering", unit="img"):
        ...
    bar = progress(total=n, desc="generate", unit="img")
    bar.update(1); bar.set_postfix({"loss": "0.41"}); bar.write("a message"); bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Generic, TextIO, TypeVar

T = TypeVar("T")

INTERVAL_S = 30.0
"""Seconds between two plain lines of one progress (the first comes after this too)."""


class PlainProgress(Generic[T]):
    """tqdm's calls (iterate, update, set_postfix, write, close) as periodic log lines."""

    def __init__(
        self,
        iterable: Iterable[T] | None,
        desc: str,
        total: int | None,
        unit: str,
        file: TextIO,
        interval: float,
        leave: bool,
        disable: bool,
    ) -> None:
        self.iterable, self.desc, self.unit, self.file = iterable, desc, unit, file
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.interval, self.leave, self.disable = (
            total,
            interval,
            leave,
            disable,
        )
        self.n, self.postfix, self.closed = 0, "", False
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("this progress was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The fixed fields: desc, count (of total and percent), elapsed, rate, postfix."""
        elapsed = time.monotonic() - self.start
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        rate = f"{self.n / elapsed:.1f} {self.unit}/s" if elapsed > 0 else ""
        fields = [self.desc, count, f"{elapsed:.0f} s", rate, self.postfix]
        return "  ".join(f for f in fields if f)

    def update(self, n: int = 1) -> None:
        """Count n more done; print a line when `interval` seconds passed since the last."""
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self.last >= self.interval:
            self.last = now
            print(self.line(), file=self.file, flush=True)

    def set_postfix(self, values: Mapping[str, Any] | None = None, **kw: Any) -> None:
        """Fields shown after the rate (`loss 0.41`), as tqdm's set_postfix."""
        merged = {**(values or {}), **kw}
        self.postfix = "  ".join(f"{k} {v}" for k, v in merged.items())

    def write(self, message: str) -> None:
        """Print a message on its own line (tqdm.write's place on a terminal)."""
        print(message, file=self.file, flush=True)

    def close(self) -> None:
        """The last line (when `leave`, as tqdm keeps its finished bar)."""
        if self.closed:
            return
        self.closed = True
        if self.leave and not self.disable and self.n:
            print(self.line(), file=self.file, flush=True)


def is_terminal(file: TextIO) -> bool:
    """Whether `file` is a terminal a bar can redraw on."""
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


def progress(
    iterable: Iterable[T] | None = None,
    desc: str = "",
    total: int | None = None,
    *,
    unit: str = "it",
    leave: bool = True,
    disable: bool = False,
    file: TextIO | None = None,
    interval: float = INTERVAL_S,
) -> Any:
    """A progress over `iterable` (or counted by hand with `update` when it is None).

    tqdm when `file` (default stderr) is a terminal, else a PlainProgress printing a
    line at most every `interval` seconds and, when `leave`, one at the end. `disable`
    silences both (e.g. on every rank but the first). Both support iteration,
    `update(n)`, `set_postfix(dict)`, `write(msg)`, `close()` and `with`."""
    out = sys.stderr if file is None else file
    if is_terminal(out):
        from tqdm import tqdm

        return tqdm(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            leave=leave,
            disable=disable,
            file=out,
            dynamic_ncols=True,
        )
    return PlainProgress(iterable, desc, total, unit, out, interval, leave, disable)
