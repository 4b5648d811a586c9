"""The inverse model: an image → a backbone's pooled features → one head per part of
the params' encoding, and the conversion of its outputs to (soft) encoded params."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from art_explorer.nets.backbones import create_backbone
from art_explorer.nets.config import InverseConfig
from art_explorer.nets.inputs import ENCODED_KEYS, NUM_GEOMETRIES
from art_explorer.scene import encoding, sampling, schema


class InverseModel(nn.Module):
    """Image (B, 3, H, W) in [0, 1] → head outputs for every part of the encoding.

    forward() returns logits / raw values: cont (B, NC) in [0, 1] (sigmoid), cat
    (list of (B, K) logits), bools (B, NB) logits, n_layers (B, 6) logits,
    layer_cont (B, 5, NLC) in [0, 1], layer_opt (B, 5, NLO) logits, layer_geom
    (B, 5, 10) logits. Build it with `InverseModel.build` to get pretrained weights."""

    mean: torch.Tensor  # (1, 3, 1, 1) buffers: the backbone's input normalisation
    std: torch.Tensor

    def __init__(
        self,
        cfg: InverseConfig,
        backbone: nn.Module | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if backbone is None:
            backbone, info = create_backbone(cfg.backbone, pretrained=False)
        assert info is not None
        self.cfg = cfg
        self.backbone_info = info
        self.backbone = backbone
        cfg.features = int(info["features"])
        self.register_buffer(
            "mean", torch.tensor(info["mean"]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(info["std"]).view(1, 3, 1, 1), persistent=False
        )
        L, H = schema.MAX_LAYERS, cfg.hidden
        self.trunk = nn.Sequential(
            nn.LayerNorm(cfg.features),
            nn.Linear(cfg.features, H),
            nn.GELU(),
            nn.Linear(H, H),
            nn.GELU(),
        )
        self.cont = nn.Linear(H, encoding.NUM_CONT)
        self.cat = nn.ModuleList(nn.Linear(H, k) for k in encoding.CAT_SIZES)
        self.bools = nn.Linear(H, len(schema.BOOL_KEYS))
        self.n_layers = nn.Linear(H, L + 1)
        self.layer_cont = nn.Linear(H, L * encoding.NUM_LAYER_CONT)
        self.layer_opt = nn.Linear(H, L * encoding.NUM_LAYER_OPT)
        self.layer_geom = nn.Linear(H, L * NUM_GEOMETRIES)

    @classmethod
    def build(cls, cfg: InverseConfig, weights: str | None = None) -> InverseModel:
        """A fresh model with the backbone's pretrained weights where it has any."""
        backbone, info = create_backbone(cfg.backbone, weights=weights, pretrained=True)
        if info["input_size"] and not cfg.input_size:
            cfg.input_size = int(info["input_size"])
        return cls(cfg, backbone, info)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] → pooled backbone embedding (B, D)."""
        x = images
        if self.cfg.input_size and x.shape[-1] != self.cfg.input_size:
            x = F.interpolate(
                x,
                size=(self.cfg.input_size,) * 2,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        if self.cfg.sqrt_input:
            x = x.clamp(min=0).sqrt()
        return self.backbone((x - self.mean) / self.std)

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        B, L = images.shape[0], schema.MAX_LAYERS
        h = self.trunk(self.features(images).float())
        return {
            "cont": torch.sigmoid(self.cont(h)),
            "cat": [head(h) for head in self.cat],
            "bools": self.bools(h),
            "n_layers": self.n_layers(h),
            "layer_cont": torch.sigmoid(self.layer_cont(h)).view(B, L, -1),
            "layer_opt": self.layer_opt(h).view(B, L, -1),
            "layer_geom": self.layer_geom(h).view(B, L, -1),
        }

    @staticmethod
    def to_encoded(out: dict[str, Any]) -> dict[str, Any]:
        """Head outputs → a batch_encode-style dict (argmax categoricals) plus the
        soft versions: cat_probs (list of (B, K)), n_layers_probs (B, 6),
        layer_geom_probs (B, 5, 10), bools_probs, layer_opt_probs, and layer_mask
        (B, 5) = P(n_layers > i), which the forward model accepts as soft inputs."""
        cat_probs = [c.softmax(-1) for c in out["cat"]]
        n_probs = out["n_layers"].softmax(-1)
        # P(n > i) for i = 0..4
        layer_mask = 1 - n_probs.cumsum(-1)[:, :-1]
        bools_p, opt_p = torch.sigmoid(out["bools"]), torch.sigmoid(out["layer_opt"])
        return {
            "cont": out["cont"],
            "cat": torch.stack([p.argmax(-1) for p in cat_probs], -1),
            "bools": (bools_p > 0.5).float(),
            "n_layers": n_probs.argmax(-1),
            "layer_cont": out["layer_cont"],
            "layer_opt": (opt_p > 0.5).float(),
            "layer_geom": out["layer_geom"].argmax(-1),
            "cat_probs": cat_probs,
            "n_layers_probs": n_probs,
            "layer_geom_probs": out["layer_geom"].softmax(-1),
            "bools_probs": bools_p,
            "layer_opt_probs": opt_p,
            "layer_mask": layer_mask,
        }

    @torch.no_grad()
    def predict_encoded(self, images: torch.Tensor) -> dict[str, Any]:
        """(B, 3, H, W) in [0, 1] → the batch_encode-style dict with continuous values
        in [0, 1], argmax categoricals, and the probabilities (see to_encoded)."""
        was = self.training
        self.eval()
        out = self.to_encoded(self(images))
        self.train(was)
        return out

    @torch.no_grad()
    def predict_params(self, images: torch.Tensor) -> list[dict[str, Any]]:
        """(B, 3, H, W) in [0, 1] → flat params, one dict per image."""
        enc = self.predict_encoded(images)
        return [
            sampling.apply_guard(
                encoding.decode_params({k: enc[k][i] for k in ENCODED_KEYS})
            )
            for i in range(images.shape[0])
        ]
