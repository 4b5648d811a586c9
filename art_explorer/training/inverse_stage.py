"""The inverse stage: train the inverse model (image → params), with the perceptual
loss through the frozen forward model and a sheet of renders of its predictions."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from art_explorer import config, utils
from art_explorer.nets import checkpoint_io, perceptual_distance
from art_explorer.nets.backbones import (
    DEFAULT_FREE_BACKBONE,
    DINOV2,
    DINOV2_REPO,
    create_backbone,
    dinov2_weights_file,
)
from art_explorer.nets.config import InverseConfig
from art_explorer.nets.forward import ForwardModel
from art_explorer.nets.inputs import batch_encode
from art_explorer.nets.inverse import InverseModel
from art_explorer.scene import rendering
from art_explorer.scoring import metrics
from art_explorer.training import cluster
from art_explorer.training.args import TrainArgs
from art_explorer.training.loader import Pairs, batches, images_at, to_device
from art_explorer.training.loop import Log, Stage, fit, speedups
from art_explorer.training.losses import PERIODIC_CONT, cont_error, inverse_param_loss
from art_explorer.training.run import Run


def choose_backbone(
    args: TrainArgs, prof: config.Profile, log: Any
) -> tuple[str, str | None]:
    """(backbone name, weights file or None). The profile's DINOv2 without weights
    falls back to the weight-free default with a notice; an explicit --backbone
    dinov2 without weights is an error (BackboneError) naming the file."""
    name = args.backbone or prof.inverse.backbone
    if name in ("dinov2", DINOV2):
        if dinov2_weights_file(args.backbone_weights) is None:
            if args.backbone:
                create_backbone(name, args.backbone_weights)  # raises, naming the file
            log(
                f"backbone: DINOv2 weights not found ({DINOV2_REPO} in the HF cache); using {DEFAULT_FREE_BACKBONE} trained from scratch instead"
            )
            return DEFAULT_FREE_BACKBONE, None
        return DINOV2, args.backbone_weights
    return name, None


@torch.no_grad()
def evaluate_inverse(
    net: torch.nn.Module,
    pairs: Pairs,
    batch_size: int,
    device: torch.device,
    amp: contextlib.AbstractContextManager[Any],
) -> dict[str, float]:
    """Validation parameter loss, continuous nRMSE (in [0, 1] units), mean
    categorical accuracy and layer-count accuracy."""
    was = net.training
    net.eval()
    n = len(pairs)
    tot = {"val_loss": 0.0, "cont_se": 0.0, "cat_acc": 0.0, "layers_acc": 0.0}
    for idx in batches(n, batch_size, None):
        enc = to_device(pairs.enc, idx, device)
        with amp:
            out = net(images_at(pairs, idx, device))
        out: dict[str, Any] = {
            k: ([t.float() for t in v] if isinstance(v, list) else v.float())
            for k, v in out.items()
        }
        loss, _ = inverse_param_loss(out, enc)
        tot["val_loss"] += float(loss) * len(idx)
        tot["cont_se"] += float(
            cont_error(out["cont"], enc["cont"], PERIODIC_CONT).mean(1).sum()
        )
        acc = torch.stack(
            [
                (lg.argmax(-1) == enc["cat"][:, i]).float()
                for i, lg in enumerate(out["cat"])
            ],
            1,
        )
        tot["cat_acc"] += float(acc.mean(1).sum())
        tot["layers_acc"] += float(
            (out["n_layers"].argmax(-1) == enc["n_layers"]).float().sum()
        )
    net.train(was)
    res = {k: v / max(1, n) for k, v in tot.items()}
    res["cont_nrmse"] = math.sqrt(res.pop("cont_se"))
    return res


class PredictionRenderer:
    """Renders predicted params for the inverse sheet: the real renderer when one
    answers (or can be started), else the forward model, else nothing."""

    def __init__(
        self,
        args: TrainArgs,
        fwd: ForwardModel | None,
        size: int,
        stack: contextlib.ExitStack,
        log: Any,
    ) -> None:
        self.fwd, self.size, self.client, self.log = fwd, size, None, log
        self.source = "forward model" if fwd is not None else "none"
        if args.renderer:
            try:
                url = stack.enter_context(
                    rendering.ensure_renderer(args.renderer_url, log)
                )
                self.client = rendering.RendererClient(url=url, retries=1)
                stack.callback(self.client.close)
                self.source = f"renderer {url}"
            except rendering.RendererError as e:
                log(f"sheet: no renderer ({e}); using the {self.source}")

    def render(
        self, params: list[dict[str, Any]], device: torch.device
    ) -> list[np.ndarray] | None:
        if self.client is not None:
            try:
                return [self.client.render(p, self.size) for p in params]
            except rendering.RendererError as e:
                self.log(
                    f"sheet: renderer failed ({e}); using the forward model from now on"
                )
                self.client = None
                self.source = "forward model" if self.fwd is not None else "none"
        if self.fwd is not None:
            with torch.no_grad():
                img = self.fwd(batch_encode(params, device)).float()
                if img.shape[-1] != self.size:
                    img = F.interpolate(
                        img,
                        size=(self.size, self.size),
                        mode="bilinear",
                        align_corners=False,
                    )
            return list(img.permute(0, 2, 3, 1).cpu().numpy())
        return None


def inverse_net(
    args: TrainArgs, resuming: bool, device: torch.device, log: Log
) -> tuple[InverseModel, bool]:
    """The inverse model to train: a fresh one on the chosen backbone, the --init
    checkpoint (its config; its weights unless resuming), or, resuming, an empty one
    that OUT-last fills. Returns (net, whether the backbone is pretrained)."""
    name, weights = choose_backbone(args, config.get_profile(args.profile), log)
    # the model resizes any input to the size it was trained at (224 for DINOv2)
    cfg = InverseConfig(
        backbone=name,
        input_size=224 if name == DINOV2 else args.size,
        sqrt_input=args.sqrt_input,
    )
    init = checkpoint_io.load_inverse(args.init) if args.init else None
    if init is not None:
        cfg = init.cfg  # fine-tune: the checkpoint's config
        log(f"inverse model: fine-tuning from {args.init}")
        if resuming:
            init = None  # its config only; the weights come from OUT-last
    net = (
        init
        if init is not None
        else InverseModel(cfg)
        if resuming
        else InverseModel.build(cfg, weights=weights)
    ).to(device)
    info = net.backbone_info
    pretrained = info["weights"] != "none"
    log(
        f"backbone: {info['name']} ({info['features']}-dim features), weights: "
        + (info["weights"] if pretrained else "none (trained from scratch)")
    )
    return net, pretrained


def frozen_forward(
    args: TrainArgs, device: torch.device, log: Log
) -> tuple[ForwardModel | None, torch.nn.Module | None]:
    """(the frozen forward model, the perceptual distance) for the inverse stage's
    perceptual loss; (model or None, None) when there is no model or its weight is 0."""
    fwd = checkpoint_io.load_forward(args.forward, device) if args.forward else None
    if fwd is None:
        log(f"perceptual loss: off (no forward model at {args.forward})")
        return None, None
    fwd.requires_grad_(False)
    if args.perceptual_weight <= 0:
        log("perceptual loss: off (--perceptual-weight 0)")
        return fwd, None
    perceptual = perceptual_distance.create_perceptual(args.perceptual).to(device)
    log(
        f"perceptual loss: {perceptual.name} through the frozen forward model "
        f"{args.forward} (weight {args.perceptual_weight:g}, ramped in over the first half)"
    )
    return fwd, perceptual


def inverse_optimizer(
    net: InverseModel, lr: float, backbone_mult: float
) -> torch.optim.Optimizer:
    """AdamW with the backbone at backbone_mult × lr and the heads at lr."""
    heads = [p for n, p in net.named_parameters() if not n.startswith("backbone.")]
    return torch.optim.AdamW(
        [
            {"params": list(net.backbone.parameters()), "lr": lr * backbone_mult},
            {"params": heads, "lr": lr},
        ],
        weight_decay=0.01,
    )


class InverseValidation:
    """The inverse stage's validation: the scores of evaluate_inverse plus, when
    something can draw predictions, the NCC of renders of the predicted params; the
    sheet shows the renders of the last evaluation (target | render of prediction)."""

    def __init__(
        self,
        net: InverseModel,
        step_net: Any,
        val: Pairs,
        renderer: PredictionRenderer,
        args: TrainArgs,
        device: torch.device,
        amp: contextlib.AbstractContextManager[Any],
    ) -> None:
        self.net, self.step_net, self.val, self.renderer = net, step_net, val, renderer
        self.args, self.device, self.amp = args, device, amp
        # (targets, renders of the predictions) of the last evaluation, float (R, R, 3)
        self.last: tuple[np.ndarray, list[np.ndarray]] | None = None

    def evaluate(self) -> dict[str, float]:
        val, device = self.val, self.device
        res = evaluate_inverse(
            self.step_net, val, self.args.batch_size, device, self.amp
        )
        imgs = images_at(val, torch.arange(min(32, len(val))), device)
        rendered = self.renderer.render(self.net.predict_params(imgs), device)
        if rendered is not None:
            target = imgs.permute(0, 2, 3, 1).cpu().numpy()
            res["render_ncc"] = float(
                np.mean(
                    [metrics.ncc(r, t) for r, t in zip(rendered, target, strict=True)]
                )
            )
            self.last = (target, rendered)
        return res

    def sheet(self) -> Any:
        val = self.val
        if self.last is None:
            k = min(16, len(val))
            imgs = images_at(val, torch.arange(k), self.device)
            target = imgs.permute(0, 2, 3, 1).cpu().numpy()
            tiles, labels = list(target), [Path(n).name for n in val.names[:k]]
            return utils.contact_sheet(tiles, labels, cols=8, cell=96)
        target, rendered = self.last
        tiles, labels = [], []
        for i in range(min(16, len(target))):
            tiles += [target[i], rendered[i]]
            labels += [
                Path(val.names[i]).name,
                f"pred {metrics.ncc(rendered[i], target[i]):.2f}",
            ]
        return utils.contact_sheet(tiles, labels, cols=8, cell=max(96, self.args.size))


def train_inverse(
    args: TrainArgs,
    train: Pairs,
    val: Pairs,
    device: torch.device,
    dist: cluster.Dist,
    log: Log,
) -> dict[str, Any]:
    """Train the inverse model: cross-entropy/MSE/BCE per head, plus the perceptual
    distance through the frozen forward model ramped in over the first half."""
    out = Path(args.out)
    resuming = args.resume and checkpoint_io.checkpoint_exists(
        out.with_name(out.name + "-last")
    )
    net, pretrained = inverse_net(args, resuming, device, log)
    fwd, perceptual = frozen_forward(args, device, log)
    freeze = (
        args.freeze_epochs
        if args.freeze_epochs is not None
        else (
            config.get_profile(args.profile).inverse.freeze_epochs if pretrained else 0
        )
    )
    bb_mult = 0.1 if pretrained else 1.0
    opt = inverse_optimizer(net, args.lr, bb_mult)
    run = Run(out, "inverse", args, higher_is_better=False, key="val_loss")
    if resuming:
        run.resume(net, opt, {"backbone": net.cfg.backbone}, log)
    amp, step_net = speedups(net, device, args)
    train_net = cluster.wrap_ddp(step_net, dist, device, find_unused=freeze > 0)
    ramp_steps = max(1, args.epochs * max(1, len(train) // args.batch_size) // 2)

    def set_frozen(epoch: int) -> None:
        frozen = epoch < freeze
        net.backbone.requires_grad_(not frozen)
        if frozen and epoch == run.start_epoch:
            log(
                f"backbone frozen for epochs 1-{freeze}, then trained at {bb_mult}× the LR"
            )

    def train_step(
        enc: dict[str, torch.Tensor], images: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        out = train_net(images)
        loss, parts = inverse_param_loss(out, enc)
        if fwd is not None and perceptual is not None:
            ramp = min(1.0, run.step / ramp_steps)
            k = min(args.perceptual_batch or len(images), len(images))
            soft = InverseModel.to_encoded(
                {
                    kk: (v[:k] if torch.is_tensor(v) else [t[:k] for t in v])
                    for kk, v in out.items()
                }
            )
            soft_in = {
                **soft,
                "bools": soft["bools_probs"],
                "layer_opt": soft["layer_opt_probs"],
            }
            with torch.no_grad():
                true_img = fwd({kk: v[:k] for kk, v in enc.items()})
            dist = perceptual(fwd(soft_in), true_img).mean()
            loss = loss + args.perceptual_weight * ramp * dist
            parts["perc"] = float(dist.detach())
        return loss, parts

    with contextlib.ExitStack() as stack:
        renderer = PredictionRenderer(args, fwd, args.size, stack, log)
        log(f"sheet renders: {renderer.source}")
        check = InverseValidation(net, step_net, val, renderer, args, device, amp)
        fields = ["cont_nrmse", "cat_acc", "layers_acc"] + (
            ["render_ncc"] if renderer.source != "none" else []
        )
        stage = Stage(
            net,
            opt,
            amp,
            train_step,
            check.evaluate,
            check.sheet,
            fields,
            on_epoch=set_frozen,
        )
        return fit(run, stage, train, args, dist, device, log)
