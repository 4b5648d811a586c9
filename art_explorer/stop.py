"""A graceful stop: the first SIGINT/SIGTERM asks a long run to finish what is in
flight and write it; a second one interrupts at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Stopped(KeyboardInterrupt):
    """A run stopped by SIGINT/SIGTERM after writing what it had (signum: which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class Stop:
    """SIGINT/SIGTERM → `event` set (finish in-flight work, write it); a second
    signal → KeyboardInterrupt at once. Handlers are restored on exit."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0
        self.signal_name = ""

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.event.set()

    @contextmanager
    def installed(self) -> Iterator[Stop]:
        """The handlers, for the main thread (elsewhere signals cannot be caught)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {
            s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)
