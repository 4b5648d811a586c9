"""Show what a model checkpoint is: its kind, config, schema hash, parameter count
and metrics. A checkpoint made for another parameter schema is refused with a message.

    python model.py models/inverse-pretrained
    python model.py checkpoints/forward --json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from art_explorer import cli
from art_explorer.nets import checkpoint_io


@dataclass
class Args:
    """Show what a model checkpoint is."""

    checkpoint: str = field(
        default=checkpoint_io.BUNDLED_INVERSE_PATH, metadata={"positional": True}
    )
    """checkpoint path, without extension or with .safetensors / .json"""
    json: bool = False
    """print the description as JSON"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, (__doc__ or "").split("\n\n")[0])


def main(args: Args) -> dict[str, Any]:
    """Print the checkpoint's description; returns it."""
    info = checkpoint_io.describe(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=1))
        return info
    print(
        f"{info['checkpoint']}: {info['kind']} model, {info['parameters']:,} parameters"
    )
    print(f"schema: v{info['schema_version']} ({info['schema_hash']})")
    print("config: " + ", ".join(f"{k}={v}" for k, v in info["config"].items()))
    if info.get("epoch") is not None:
        print(f"epoch: {info['epoch']}")
    metrics = info["metrics"]
    shown = [
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in metrics.items()
    ]
    print("metrics: " + ("  ".join(shown) if shown else "none recorded"))
    return info


if __name__ == "__main__":
    try:
        main(parse_args())
    except checkpoint_io.CheckpointError as e:
        sys.exit(f"error: {e}")
