"""A contact sheet of curated-like draws beside the original's curated-like pictures.

    python bench/curated_like.py                 # docs/curated-like.png
    python bench/curated_like.py --n 4 --out /tmp/sheet.png   # smoke

Top rows: `--n` draws of sampling.sample_curated_like (seeds 0..n-1) drawn by the
bundled renderer in-process at 256². Bottom rows: the 16 `refs-like-NN` pictures of
the golden set 2 (`--golden`), curated-like draws the original renderer drew. The
two sets should look alike: layered scenes with free layer transforms."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import cli, utils
from art_explorer.scene import sampling, structure

GOLDEN2 = utils.ROOT.parent / "shared" / "golden2"


def golden_refs_like(folder: Path) -> list[tuple[str, np.ndarray]]:
    """(name, 256² picture) of every `refs-like-NN` case in a golden set folder."""
    names = (folder / "names.txt").read_text(encoding="utf-8").splitlines()
    out = []
    for i, name in enumerate(names):
        if name.startswith("refs-like-"):
            data = (folder / f"{i:02d}-256.png").read_bytes()
            out.append((name, utils.png_to_array(data)))
    return out


@dataclass
class Args:
    """Options of bench/curated_like.py."""

    n: int = 24
    """curated-like draws"""
    golden: str = str(GOLDEN2)
    """golden set 2 folder"""
    out: str = "docs/curated-like.png"
    """sheet PNG"""
    quick: bool = False
    """accepted for make bench (which passes it to every bench); no effect"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def main(args: Args) -> Path:
    r = structure.LocalRenderer()
    images, labels = [], []
    for seed in range(args.n):
        p = sampling.sample_curated_like(random.Random(seed))
        images.append(r.render(p, 256))
        labels.append(f"ours {seed}: {p['geometry']} L{len(p['layers'])}")
    golden = golden_refs_like(Path(args.golden)) if Path(args.golden).is_dir() else []
    pad = (-len(images)) % 8
    images += [np.zeros((256, 256, 3), np.float32)] * pad
    labels += [""] * pad
    for name, img in golden:
        images.append(img)
        labels.append(f"original {name}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    utils.contact_sheet(images, labels, cols=8, cell=160).save(out)
    print(f"{out}: {args.n} curated-like draws, {len(golden)} golden2 refs-like")
    return out


if __name__ == "__main__":
    main(parse_args())
