"""The learning-rate schedules: pure functions of the step (train.py) or of the share
of the time budget spent (pretraining on the clock)."""

from __future__ import annotations

import math


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine from base to 5% of base."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def clock_lr(frac: float, base: float, warmup: float = 0.02) -> float:
    """Warm-up over the first `warmup` of the budget, then cosine to 5% of base;
    `frac` is the share of the time budget spent."""
    if frac < warmup:
        return base * max(0.05, frac / warmup)
    t = min(1.0, (frac - warmup) / (1 - warmup))
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))
