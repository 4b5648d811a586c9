"""Watching samples arrive: a live window or a refreshed contact sheet, and the
contact sheet of a run's first samples."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from art_explorer import atomic, utils

SHEET_COLS, SHEET_ROWS = 8, 4
PREVIEW_COUNT = 16
NON_GUI_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def has_display() -> bool:
    """True where a matplotlib window can open (macOS, Windows, or X/Wayland)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class Preview:
    """Shows the latest samples: a matplotlib window when a display is available,
    else a contact sheet refreshed (atomically, at most twice a second) at `path`."""

    def __init__(self, path: Path, log: Any = print) -> None:
        self.path = path
        self.latest: list[tuple[np.ndarray, str]] = []
        self.last_write = 0.0
        self.window: Any = None
        if has_display():
            try:
                import matplotlib.pyplot as plt

                backend = str(plt.get_backend()).lower()
                if backend in NON_GUI_BACKENDS:
                    raise RuntimeError(f"matplotlib has only the {backend} backend")
                plt.ion()
                fig, ax = plt.subplots(figsize=(6, 6))
                ax.set_axis_off()
                self.window = (plt, fig, ax, None)
                log("preview: showing the latest samples in a window")
            except Exception as e:  # no usable GUI backend
                log(f"preview: no window ({e}); writing {path} instead")
        if self.window is None:
            log(f"preview: the latest samples are refreshed in {path}")

    def add(self, image: np.ndarray, label: str) -> None:
        """One new sample: image (H, W, 3) float in [0, 1], its caption."""
        self.latest = [*self.latest, (image, label)][-PREVIEW_COUNT:]
        if self.window is not None:
            plt, _fig, ax, shown = self.window
            if shown is None:
                self.window = (plt, _fig, ax, ax.imshow(image))
            else:
                shown.set_data(image)
            ax.set_title(label)
            plt.pause(0.001)
            return
        now = time.monotonic()
        if now - self.last_write >= 0.5:
            self.flush()
            self.last_write = now

    def flush(self) -> None:
        if self.window is None and self.latest:
            write_sheet(self.path, self.latest, cols=4)


def write_sheet(
    path: Path, samples: list[tuple[np.ndarray, str]], cols: int = SHEET_COLS
) -> None:
    """A contact sheet of (image, label) pairs, `cols` a row, at ≥ 128 px a tile."""
    sheet = utils.contact_sheet(
        [im for im, _ in samples],
        [lb for _, lb in samples],
        cols=cols,
        cell=max(128, samples[0][0].shape[1]),
    )
    atomic.write_png(path, sheet)
