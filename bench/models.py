"""Benchmark: the forward and inverse models on a held-out set rendered by the real
renderer.

    python bench/models.py            # 256 held-out targets
    python bench/models.py --quick    # 32 targets (CI)

Held-out targets: sampling.sample_params from a seeded RNG of its own (not in data/),
rendered at the forward model's size. Forward model: NCC and line F1 (evaluation.md),
PSNR, SSIM and LPIPS (when its weights exist), with the all-black picture's scores
beside them; images/s (batch 16, no gradient) and gradient steps/s (batch 16,
d loss / d params, as predict uses it) next to the renderer's own images/s over HTTP.
Inverse model: continuous nRMSE (in [0, 1] units, angles wrapped), accuracy per
categorical, booleans and layer count, and the NCC / line F1 of the real render of
its prediction (a random draw's for reference). Writes bench/results/models.md;
anything below its notes marker is kept from run to run.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import atomic, cli
from art_explorer.nets import checkpoint_io, perceptual_distance
from art_explorer.nets import model as M
from art_explorer.scene import rendering, sampling, schema
from art_explorer.scoring import metrics
from art_explorer.training import losses

NOTES_MARKER = "<!-- notes below this line are kept by bench/models.py -->"


@dataclass
class Args:
    """Options of bench/models.py."""

    quick: bool = False
    """CI size: 32 targets"""
    n: int | None = None
    """held-out targets (None: 256; --quick: 32)"""
    seed: int = 12345
    """held-out RNG seed"""
    size: int | None = None
    """target size in px (None: the forward model's, else 64)"""
    threads: int = 0
    """torch CPU threads, 0 = default"""
    forward: str = checkpoint_io.DEFAULT_FORWARD_PATH
    """forward checkpoint"""
    inverse: str = checkpoint_io.DEFAULT_INVERSE_PATH
    """inverse checkpoint"""
    renderer_url: str | None = None
    """renderer (None: $RENDERER_URL or localhost:3000; started if absent)"""
    out: str = "bench/results/models.md"
    """markdown results"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


# ----------------------------------------------------------------------------------
# Picture scores (numpy, (H, W, 3) in [0, 1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Plain SSIM of the gray images (Gaussian window σ 1.5 px)."""
    x, y = a.mean(-1).astype(np.float64), b.mean(-1).astype(np.float64)
    blur = metrics.gaussian_blur
    mx, my = blur(x, 1.5), blur(y, 1.5)
    vx = blur(x * x, 1.5) - mx * mx
    vy = blur(y * y, 1.5) - my * my
    cxy = blur(x * y, 1.5) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def scores(
    preds: list[np.ndarray], targets: list[np.ndarray], lpips: Any | None
) -> dict[str, float]:
    out = {
        "NCC": float(
            np.mean([metrics.ncc(p, t) for p, t in zip(preds, targets, strict=True)])
        ),
        "line F1": float(
            np.mean(
                [metrics.line_f1(p, t) for p, t in zip(preds, targets, strict=True)]
            )
        ),
        "PSNR dB": float(
            np.mean([psnr(p, t) for p, t in zip(preds, targets, strict=True)])
        ),
        "SSIM": float(
            np.mean([ssim(p, t) for p, t in zip(preds, targets, strict=True)])
        ),
    }
    if lpips is not None:
        with torch.no_grad():
            a = torch.from_numpy(np.stack(preds)).permute(0, 3, 1, 2).float()
            b = torch.from_numpy(np.stack(targets)).permute(0, 3, 1, 2).float()
            out["LPIPS"] = float(lpips(a, b).mean())
    return out


def to_images(x: torch.Tensor) -> list[np.ndarray]:
    return list(x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy())


# ----------------------------------------------------------------------------------


def bench_forward(
    fwd: M.ForwardModel,
    params: list[dict[str, Any]],
    targets: list[np.ndarray],
    lpips: Any | None,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(model scores, black scores, throughput)."""
    preds: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, len(params), 16):
            preds += to_images(fwd(M.batch_encode(params[i : i + 16])))
    black = [np.zeros_like(t) for t in targets]
    batch = M.batch_encode(params[:16])
    with torch.no_grad():
        fwd(batch)
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 3 or n < 2:
            fwd(batch)
            n += 1
        ips = 16 * n / (time.perf_counter() - t0)
    tgt = torch.from_numpy(np.stack(targets[:16])).permute(0, 3, 1, 2)
    perc = perceptual_distance.create_perceptual("sqrt-ms-l1")
    cont = batch["cont"].clone().requires_grad_(True)
    opt = torch.optim.Adam([cont], lr=1e-2)
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 3 or n < 2:
        loss = perc(fwd({**batch, "cont": cont}), tgt).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        n += 1
    sps = n / (time.perf_counter() - t0)
    return (
        scores(preds, targets, lpips),
        scores(black, targets, lpips),
        {"images/s": ips, "grad steps/s (batch 16)": sps},
    )


def bench_inverse(
    inv: M.InverseModel,
    params: list[dict[str, Any]],
    targets: list[np.ndarray],
    client: rendering.RendererClient,
    size: int,
    seed: int,
) -> dict[str, float]:
    imgs = torch.from_numpy(np.stack(targets)).permute(0, 3, 1, 2)
    true = M.batch_encode(params)
    enc: dict[str, Any] = {}
    preds: list[dict[str, Any]] = []
    with torch.no_grad():
        parts = [inv.predict_encoded(imgs[i : i + 32]) for i in range(0, len(imgs), 32)]
        for k in ("cont", "cat", "bools", "n_layers"):
            enc[k] = torch.cat([p[k] for p in parts])
        for i in range(0, len(imgs), 32):
            preds += inv.predict_params(imgs[i : i + 32])
    err = losses.cont_error(enc["cont"].float(), true["cont"], losses.PERIODIC_CONT)
    out: dict[str, float] = {"cont nRMSE": float(err.mean().sqrt())}
    for i, k in enumerate(schema.CAT_KEYS):
        out[f"acc {k}"] = float((enc["cat"][:, i] == true["cat"][:, i]).float().mean())
    out["acc booleans"] = float((enc["bools"] == true["bools"]).float().mean())
    out["acc layer count"] = float((enc["n_layers"] == true["n_layers"]).float().mean())
    renders = [client.render(p, size) for p in preds]
    out["NCC of render"] = float(
        np.mean([metrics.ncc(r, t) for r, t in zip(renders, targets, strict=True)])
    )
    out["line F1 of render"] = float(
        np.mean([metrics.line_f1(r, t) for r, t in zip(renders, targets, strict=True)])
    )
    rng = random.Random(seed + 1)
    rand = [client.render(sampling.sample_params(rng), size) for _ in targets]
    out["NCC of a random draw (reference)"] = float(
        np.mean([metrics.ncc(r, t) for r, t in zip(rand, targets, strict=True)])
    )
    return out


def main(args: Args) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.n or (32 if args.quick else 256)
    fwd = checkpoint_io.load_forward(args.forward)
    inv = checkpoint_io.load_inverse(args.inverse)
    if fwd is None and inv is None:
        print(
            f"bench/models.py: no checkpoints at {args.forward} or {args.inverse} "
            f"(run `make train` first); {args.out} is left as it is"
        )
        return {}
    size = args.size or (fwd.cfg.size if fwd is not None else 64)
    try:
        lpips = perceptual_distance.create_perceptual("lpips")
    except FileNotFoundError:
        lpips = None
    rng = random.Random(args.seed)
    params = [sampling.sample_params(rng) for _ in range(n)]
    load0 = os.getloadavg()
    result: dict[str, Any] = {"n": n, "size": size}
    with rendering.ensure_renderer(args.renderer_url) as url:
        client = rendering.RendererClient(url=url)
        t0 = time.perf_counter()
        targets = [client.render(p, size) for p in params]
        result["renderer images/s"] = n / (time.perf_counter() - t0)
        if fwd is not None:
            if fwd.cfg.size != size:
                raise SystemExit(
                    f"--size {size} differs from the forward model's {fwd.cfg.size}"
                )
            result["forward"], result["black"], result["throughput"] = bench_forward(
                fwd, params, targets, lpips
            )
            result["forward_config"] = fwd.cfg
        if inv is not None:
            result["inverse"] = bench_inverse(
                inv, params, targets, client, size, args.seed
            )
            result["inverse_backbone"] = inv.backbone_info["name"]
        client.close()
    result["load"] = (load0[0], os.getloadavg()[0])
    write_results(args, result)
    return result


def write_results(args: Args, r: dict[str, Any]) -> None:
    cmd = "python bench/models.py" + (" --quick" if args.quick else "")
    lines = [
        "# Forward and inverse models on held-out renders",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}",
        f"- load average at start / end: {r['load'][0]:.1f} / {r['load'][1]:.1f} (other work inflates times)",
        f"- command: `{cmd}`",
        f"- held-out: {r['n']} × sampling.sample_params(random.Random({args.seed})) rendered at {r['size']}² by the real renderer",
        "",
    ]
    if "forward" in r:
        lines += [
            f"## Forward model ({args.forward}: {r['forward_config']})",
            "",
            "| picture | " + " | ".join(r["forward"]) + " |",
            "|---" * (len(r["forward"]) + 1) + "|",
            "| forward model | "
            + " | ".join(f"{v:.3f}" for v in r["forward"].values())
            + " |",
            "| all-black image | "
            + " | ".join(f"{v:.3f}" for v in r["black"].values())
            + " |",
            "",
            "| throughput (CPU time shared with other work) | per second |",
            "|---|---|",
        ]
        lines += [
            f"| forward model, {k} | {v:.1f} |" for k, v in r["throughput"].items()
        ]
        lines += [
            f"| renderer over HTTP, images/s (1 client, {r['size']}²) | {r['renderer images/s']:.1f} |",
            "",
        ]
    else:
        lines += [f"No forward model at {args.forward} (run `make train-forward`).", ""]
    if "inverse" in r:
        lines += [
            f"## Inverse model ({args.inverse}: backbone {r['inverse_backbone']})",
            "",
            "| measure | value |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.3f} |" for k, v in r["inverse"].items()]
        lines.append("")
    else:
        lines += [
            f"No inverse model at {args.inverse} (run `make train-inverse-all`).",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    notes = ""
    if out.exists():
        old = out.read_text(encoding="utf-8")
        if NOTES_MARKER in old:
            notes = old[old.index(NOTES_MARKER) :]
    atomic.atomic_write_text(out, text + "\n" + (notes or NOTES_MARKER + "\n"))


if __name__ == "__main__":
    main(parse_args())
