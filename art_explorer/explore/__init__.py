"""Explore: discovery of new, striking pictures. qd.grow grows a persistent archive of
distinct elites (quality-diversity); see docs/explore.md."""

from __future__ import annotations

from typing import Any


def grow(args: Any, log: Any = print) -> dict[str, Any]:
    """qd.grow (imported on call: pyribs takes seconds to import)."""
    from art_explorer.explore import qd

    return qd.grow(args, log)
