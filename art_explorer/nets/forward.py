"""The forward model: encoded params → the picture the renderer would draw.

ForwardModel mirrors the scene's structure (docs/scene.md) so that the network only
has to learn what is hard: one *chain* (a progression of outlines) at a time, in its
own frame, with the placement of its first instances given.

    encoded params ─┬─ chain embeddings (base + one per layer, overrides mixed in
                    │   by the presence flags, Fourier features of the values)
                    ├─ layout: the first k instances of each chain placed by the
                    │   documented progressions (scale, rotation, opacity, offset,
                    │   origin) and splatted with outline templates → hint (1, h, h)
                    ├─ decoder: MLP → 8×8 → transposed convs up (FiLM, the hint
                    │   added at every stage), self-attention at ≤ attn_res² →
                    │   canonical chain intensity (1, S, S) + gain × hint
                    ├─ Scene · Group affine of each chain → differentiable warp
                    │   (grid_sample) into the view, × the chain's colour
                    └─ additive sum of the chains → soft clip at 1 → post-net
                        (dither: FiLM + learned maps; noise: a learned per-pixel
                        pick threshold and sign) → image (B, 3, R, R) in [0, 1]

Everything is differentiable w.r.t. the continuous values (`cont`, `layer_cont`), the
booleans and presence flags as floats, soft categoricals (`cat_probs`) and a soft
layer mask (`layer_mask`), which predict.py relies on. `composite=False` is the plain
MLP → decoder → 3-channel image of pipeline.md, kept for comparison;
bench/results/models.md has the measurements behind each piece.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from art_explorer.config import ForwardConfig
from art_explorer.nets.blocks import Decoder, FiLM, mlp, zero_init
from art_explorer.nets.inputs import (
    CHAIN_CATS,
    CHAIN_KEYS,
    NUM_GEOMETRIES,
    POST_CATS,
    POST_CONT,
    cont_index,
    denorm,
    fourier,
    layer_index,
    param_of,
    unit_affine,
)
from art_explorer.nets.layout import (
    gradient_templates,
    instance_layout,
    outline_templates,
    splat_layout,
)
from art_explorer.scene import encoding, schema
from art_explorer.scene.view import VIEW_HALF, linear_to_srgb, srgb_to_linear

MIN_LAYER_SCALE = 0.05  # |layer scale| below this is treated as this in the warp


@dataclass
class ChainInputs:
    """The chains' intrinsic values and transforms (ForwardModel.chain_inputs); chain
    0 is the base chain, 1..5 the layers (6 = 1 + schema.MAX_LAYERS)."""

    cont: torch.Tensor
    """(B, 6, 9) the chain-intrinsic continuous values (CHAIN_KEYS) in base units"""
    cats: torch.Tensor
    """(B, 6, (5 + 1)·E) categorical embeddings: the shared ones, then the geometry"""
    coupled: torch.Tensor
    """(B, 6, 1) positionCoupled as a float"""
    color: torch.Tensor
    """(B, 6, 3) the chain's sRGB colour (base × own, as the renderer draws it)"""
    mask: torch.Tensor
    """(B, 6) 1 for a chain that is drawn (soft for predicted layers)"""
    rot: torch.Tensor
    """(B, 6) layer rotation in radians (0 for the base chain)"""
    sx: torch.Tensor
    """(B, 6) layer scale x (1 for the base chain)"""
    sy: torch.Tensor
    """(B, 6) layer scale y"""
    lt: torch.Tensor
    """(B, 6, 2) group translation: Scene.position for the base chain, the layer's own
    position for a layer"""
    scene: torch.Tensor
    """(B, 4) Scene scale, rotation, position x, y"""
    probs: dict[str, torch.Tensor]
    """per chain categorical (CHAIN_CATS and geometry) → (B, 6, options) probabilities"""

    def float(self) -> ChainInputs:
        """The tensors as float32 (probs as they are)."""
        return ChainInputs(
            self.cont.float(),
            self.cats.float(),
            self.coupled.float(),
            self.color.float(),
            self.mask.float(),
            self.rot.float(),
            self.sx.float(),
            self.sy.float(),
            self.lt.float(),
            self.scene.float(),
            self.probs,
        )


class ForwardModel(nn.Module):
    """Encoded params (batch_encode's dict) → image (B, 3, R, R) in [0, 1].

    Optional soft inputs: `cat_probs` (list of (B, K) per CAT_KEYS, replaces `cat`),
    `layer_geom_probs` (B, 5, 10), `layer_mask` (B, 5) float (replaces `n_layers`).
    """

    def __init__(self, cfg: ForwardConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.embed
        self.cat_emb = nn.ModuleList(nn.Embedding(k, e) for k in encoding.CAT_SIZES)
        nf = 1 + 2 * cfg.n_freq
        self.register_buffer(
            "chain_idx",
            torch.tensor([cont_index(k) for k in CHAIN_KEYS]),
            persistent=False,
        )
        self.register_buffer(
            "post_idx",
            torch.tensor([cont_index(k) for k in POST_CONT]),
            persistent=False,
        )
        # layer overrides → base units, for the chain keys they override
        over = [k for k in CHAIN_KEYS if k in schema.LAYER_OPTIONAL]
        self.over_chain = [CHAIN_KEYS.index(k) for k in over]
        self.over_layer = [layer_index(k) for k in over]
        self.over_opt = [schema.LAYER_OPTIONAL.index(k) for k in over]
        ab = [unit_affine(schema.LAYER_PARAM[k], schema.PARAM[k]) for k in over]
        self.register_buffer(
            "over_a", torch.tensor([a for a, _ in ab]), persistent=False
        )
        self.register_buffer(
            "over_b", torch.tensor([b for _, b in ab]), persistent=False
        )
        chain_in = len(CHAIN_KEYS) * nf + (len(CHAIN_CATS) + 1) * e + 1 + 2
        self.chain_mlp = mlp(chain_in, cfg.hidden, cfg.hidden, depth=3)
        post_in = len(POST_CONT) * nf + len(POST_CATS) * e + len(schema.BOOL_KEYS)
        self.post_mlp = mlp(post_in, cfg.hidden // 2, cfg.hidden // 2, depth=2)
        if cfg.composite:
            self.decoder = Decoder(
                cfg.hidden,
                cfg.canvas_size,
                cfg.width,
                1,
                cfg.attn_res,
                hint_ch=1 if cfg.layout_k else 0,
            )
            if cfg.layout_k:
                self.templates = nn.Parameter(outline_templates(cfg.template))
                self.hint_gain = nn.Linear(cfg.hidden, 1)
                with torch.no_grad():
                    self.hint_gain.weight.zero_()
                    self.hint_gain.bias.fill_(-2.0)
            with torch.no_grad():  # the canonical chain starts dark, not grey
                head_bias = self.decoder.head.bias
                assert head_bias is not None
                head_bias.fill_(-4.0)
        else:
            xf_in = (
                7 * nf
            )  # layer transform: rotation, position x/y, scale x/y + mask, colour
            self.layer_mlp = mlp(cfg.hidden + xf_in + 3, cfg.hidden, cfg.hidden)
            scene_in = 3 * nf + 3 + cfg.hidden // 2 + 6
            self.global_mlp = mlp(
                cfg.hidden + scene_in + cfg.hidden, cfg.hidden, cfg.hidden
            )
            self.decoder = Decoder(cfg.hidden, cfg.size, cfg.width, 3, cfg.attn_res)
        pc = max(8, cfg.width)
        self.pattern = nn.Parameter(torch.zeros(1, cfg.pattern_ch, cfg.size, cfg.size))
        # The noise pass (docs/scene.md): a fixed per-pixel pick threshold u and sign s
        # (1-px cells below 2048 px), learned: picked where noiseDensity > u.
        u0 = torch.rand(1, 1, cfg.size, cfg.size).clamp(0.02, 0.98)
        self.noise_u = nn.Parameter(torch.logit(u0))
        self.noise_s = nn.Parameter(torch.zeros(1, 1, cfg.size, cfg.size))
        self.post_in = nn.Conv2d(3 + cfg.pattern_ch, pc, 3, padding=1)
        self.post_film = FiLM(cfg.hidden // 2, pc)
        self.post_mid = nn.Conv2d(pc, pc, 3, padding=1)
        self.post_out = nn.Conv2d(pc, 3, 3, padding=1)
        zero_init(self.post_out)

    # -- pieces of the encoding ------------------------------------------------
    def _cat_embeddings(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """One (B, E) embedding per CAT_KEYS entry (soft when cat_probs is given)."""
        probs = batch.get("cat_probs")
        out = []
        for i, emb in enumerate(self.cat_emb):
            if probs is not None:
                out.append(probs[i].to(emb.weight.dtype) @ emb.weight)
            else:
                out.append(emb(batch["cat"][:, i]))
        return out

    def _cat_probs(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """One (B, K) probability vector per CAT_KEYS entry (one-hot when hard)."""
        if batch.get("cat_probs") is not None:
            return [p.float() for p in batch["cat_probs"]]
        return [
            F.one_hot(batch["cat"][:, i], k).float()
            for i, k in enumerate(encoding.CAT_SIZES)
        ]

    def _layer_mask(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, 5) float: 1 for real layers (or the given soft mask)."""
        if batch.get("layer_mask") is not None:
            return batch["layer_mask"].float()
        n = batch["n_layers"]
        return (
            torch.arange(schema.MAX_LAYERS, device=n.device)[None] < n[:, None]
        ).float()

    def chain_inputs(self, batch: dict[str, Any]) -> ChainInputs:
        """The chains' intrinsic values and transforms (ChainInputs has the shapes)."""
        cats, probs = self._chain_categoricals(batch)
        color, mask = self._chain_colours(batch)
        rot, sx, sy, lt, scene = self._chain_transforms(batch)
        bools = batch["bools"].float()
        coupled = bools[
            :, schema.BOOL_KEYS.index("positionCoupled"), None, None
        ].expand(-1, schema.MAX_LAYERS + 1, 1)
        return ChainInputs(
            cont=self._chain_values(batch),
            cats=cats,
            coupled=coupled,
            color=color,
            mask=mask,
            rot=rot,
            sx=sx,
            sy=sy,
            lt=lt,
            scene=scene,
            probs=probs,
        )

    def _chain_values(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, 6, 9) CHAIN_KEYS values: the base chain's, then each layer's with its
        present overrides mixed in (base units)."""
        cont, lc = batch["cont"].float(), batch["layer_cont"].float()
        lo = batch["layer_opt"].float()
        L = schema.MAX_LAYERS
        base = cont[:, self.chain_idx]  # (B, 9)
        chain = base[:, None].repeat(1, L + 1, 1)  # (B, 6, 9)
        layer_vals = lc[:, :, self.over_layer] * self.over_a + self.over_b  # (B, 5, k)
        opt = lo[:, :, self.over_opt]
        mixed = base[:, None, self.over_chain] + opt * (
            layer_vals - base[:, None, self.over_chain]
        )
        return torch.cat(
            [
                chain[:, :1],
                chain[:, 1:].index_copy(
                    2, torch.tensor(self.over_chain, device=cont.device), mixed
                ),
            ],
            dim=1,
        )

    def _chain_categoricals(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B, 6, 6E) embeddings of each chain's categoricals (the shared CHAIN_CATS,
        then its geometry) and their (B, 6, options) probabilities."""
        lo = batch["layer_opt"].float()
        L = schema.MAX_LAYERS
        embs = self._cat_embeddings(batch)
        names = list(schema.CAT_KEYS)
        shared = torch.cat(
            [embs[names.index(k)] for k in CHAIN_CATS], dim=-1
        )  # (B, 5E)
        geo_base = embs[names.index("geometry")]  # (B, E)
        geo_emb = self.cat_emb[names.index("geometry")]
        assert isinstance(geo_emb, nn.Embedding)
        geo_w = geo_emb.weight
        if batch.get("layer_geom_probs") is not None:
            geo_layer = batch["layer_geom_probs"].to(geo_w.dtype) @ geo_w
        else:
            geo_layer = geo_w[batch["layer_geom"]]  # (B, 5, E)
        g_opt = lo[:, :, schema.LAYER_OPTIONAL.index("geometry"), None]
        geo = torch.cat(
            [
                geo_base[:, None],
                geo_base[:, None] + g_opt * (geo_layer - geo_base[:, None]),
            ],
            1,
        )
        cats = torch.cat([shared[:, None].expand(-1, L + 1, -1), geo], dim=-1)
        cp = self._cat_probs(batch)
        probs = {
            k: cp[names.index(k)][:, None].expand(-1, L + 1, -1) for k in CHAIN_CATS
        }
        if batch.get("layer_geom_probs") is not None:
            lg = batch["layer_geom_probs"].float()
        else:
            lg = F.one_hot(batch["layer_geom"], NUM_GEOMETRIES).float()
        gb = cp[names.index("geometry")][:, None]
        probs["geometry"] = torch.cat([gb, gb + g_opt * (lg - gb)], 1)
        return cats, probs

    def _chain_colours(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 6, 3) each chain's sRGB colour and (B, 6) its presence mask."""
        cont, lc = batch["cont"].float(), batch["layer_cont"].float()
        lo = batch["layer_opt"].float()
        ci = [cont_index(f"color.{c}") for c in "rgb"]
        base_col = cont[:, ci]
        lcol = lc[:, :, [layer_index("color", j) for j in range(3)]]
        c_opt = lo[:, :, schema.LAYER_OPTIONAL.index("color"), None]
        own = torch.cat(
            [base_col[:, None], base_col[:, None] + c_opt * (lcol - base_col[:, None])],
            1,
        )
        # the renderer's chain colour: base × own, both linear, sRGB-encoded
        color = linear_to_srgb(srgb_to_linear(base_col[:, None]) * srgb_to_linear(own))
        mask = torch.cat(
            [torch.ones(cont.shape[0], 1, device=cont.device), self._layer_mask(batch)],
            1,
        )
        return color, mask

    def _chain_transforms(self, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """Each chain's Group transform and the Scene's: rot, sx, sy (B, 6), lt
        (B, 6, 2) and scene (B, 4) = Scene scale, rotation, position x, y."""
        cont, lc = batch["cont"].float(), batch["layer_cont"].float()
        lp, P = schema.LAYER_PARAM, schema.PARAM
        zeros = torch.zeros(cont.shape[0], 1, device=cont.device)
        rot = torch.cat(
            [zeros, denorm(lc[:, :, layer_index("rotation")], lp["rotation"])], 1
        )
        sx = torch.cat(
            [zeros + 1, denorm(lc[:, :, layer_index("scale", 0)], lp["scale"])], 1
        )
        sy = torch.cat(
            [zeros + 1, denorm(lc[:, :, layer_index("scale", 1)], lp["scale"])], 1
        )
        # group translations: Scene.position for the base chain (it moves the base
        # only), each layer's own position for a layer
        lt = torch.stack(
            [
                torch.cat(
                    [
                        denorm(
                            cont[:, cont_index(f"position.{'xy'[j]}")], P["position"]
                        )[:, None],
                        denorm(lc[:, :, layer_index("position", j)], lp["position"]),
                    ],
                    1,
                )
                for j in range(2)
            ],
            -1,
        )
        scene = torch.stack(
            [
                denorm(cont[:, cont_index("scale")], P["scale"]),
                denorm(cont[:, cont_index("rotation")], P["rotation"]),
                denorm(cont[:, cont_index("position.x")], P["position"]),
                denorm(cont[:, cont_index("position.y")], P["position"]),
            ],
            -1,
        )
        return rot, sx, sy, lt, scene

    def post_embedding(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, hidden/2) embedding of the post-pass params (dither, noise, bools)."""
        embs = self._cat_embeddings(batch)
        names = list(schema.CAT_KEYS)
        x = torch.cat(
            [fourier(batch["cont"].float()[:, self.post_idx], self.cfg.n_freq)]
            + [embs[names.index(k)] for k in POST_CATS]
            + [batch["bools"].float()],
            -1,
        )
        return self.post_mlp(x)

    def warp_theta(self, ch: ChainInputs) -> torch.Tensor:
        """(B, 6, 2, 3) affine_grid matrices: output (view) normalised coordinates →
        the canonical canvas' normalised coordinates, for Scene · Group of each chain
        (Scene = R(θ)·S(s); Scene.position sits in the base chain's Group)."""
        s, th, _, _ = ch.scene.unbind(-1)  # (B,)
        s = s.clamp(min=1e-3)

        def safe(v: torch.Tensor) -> torch.Tensor:
            return torch.where(
                v >= 0, v.clamp(min=MIN_LAYER_SCALE), v.clamp(max=-MIN_LAYER_SCALE)
            )

        sx, sy, rot = safe(ch.sx), safe(ch.sy), ch.rot  # (B, 6)
        # A⁻¹ = diag(1/sx, 1/sy) · R(−rot) · R(−θ) / s ; total rotation φ = rot + θ
        phi = rot + th[:, None]
        c, si = phi.cos(), phi.sin()
        inv_s = 1 / s[:, None]
        a00, a01 = c / sx * inv_s, si / sx * inv_s
        a10, a11 = -si / sy * inv_s, c / sy * inv_s
        # translation t = A_s · t_g, with A_s = s·R(θ)
        ct, st = th.cos()[:, None], th.sin()[:, None]
        gx, gy = ch.lt[..., 0], ch.lt[..., 1]
        tx = s[:, None] * (ct * gx - st * gy)
        ty = s[:, None] * (st * gx + ct * gy)
        # c_n = (1/canvas) F A⁻¹ F n − (1/E) F A⁻¹ t, F = diag(1, −1)
        k = 1.0 / self.cfg.canvas
        E = VIEW_HALF * self.cfg.canvas
        l00, l01, l10, l11 = a00 * k, -a01 * k, -a10 * k, a11 * k
        b0 = -(a00 * tx + a01 * ty) / E
        b1 = (a10 * tx + a11 * ty) / E
        return torch.stack(
            [torch.stack([l00, l01, b0], -1), torch.stack([l10, l11, b1], -1)], -2
        )

    def chain_embedding(self, ch: ChainInputs) -> torch.Tensor:
        """(B, 6, hidden): the intrinsic look of each chain plus its log magnification."""
        mag = ch.scene[:, None, :1].clamp(min=1e-3).log() + torch.stack(
            [
                ch.sx.abs().clamp(min=MIN_LAYER_SCALE).log(),
                ch.sy.abs().clamp(min=MIN_LAYER_SCALE).log(),
            ],
            -1,
        )
        x = torch.cat([fourier(ch.cont, self.cfg.n_freq), ch.cats, ch.coupled, mag], -1)
        return self.chain_mlp(x)

    # -- the image -------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        ch = self.chain_inputs(batch)
        emb = self.chain_embedding(ch)  # (B, 6, H)
        B, C, R = emb.shape[0], emb.shape[1], self.cfg.size
        if self.cfg.composite:
            light = self.composite(ch, emb)  # (B, 3, R, R) ≥ 0
            img = 1 - F.softplus(12.0 * (1 - light)) / 12.0  # soft min(light, 1)
        else:
            img = torch.sigmoid(self.single(batch, ch, emb))
        post = self.post_embedding(batch)
        x = torch.cat([img, self.pattern.expand(B, -1, -1, -1).to(img.dtype)], 1)
        h = F.gelu(self.post_film(self.post_in(x), post))
        h = F.gelu(self.post_mid(h))
        out = img + self.post_out(h) + self.noise(batch)
        del C, R
        return out.clamp(0.0, 1.0)  # (B, 3, R, R) in [0, 1]

    def noise(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, 1, R, R): ±0.5·noiseOpacity where a pixel is picked, when enabled."""
        cont, bools = batch["cont"].float(), batch["bools"].float()
        on = bools[:, schema.BOOL_KEYS.index("noiseEnabled"), None, None, None]
        density = cont[:, cont_index("noiseDensity"), None, None, None]
        opacity = denorm(
            cont[:, cont_index("noiseOpacity")], schema.PARAM["noiseOpacity"]
        )
        pick = torch.sigmoid((density - torch.sigmoid(self.noise_u)) / 0.05)
        return on * 0.5 * opacity[:, None, None, None] * torch.tanh(self.noise_s) * pick

    def composite(self, ch: ChainInputs, emb: torch.Tensor) -> torch.Tensor:
        """Decode the chains that are present, warp each into the view, × colour, sum."""
        B, C = emb.shape[:2]
        R, S = self.cfg.size, self.cfg.canvas_size
        mask = ch.mask.reshape(-1)  # (B·6,)
        # chains that exist (a soft mask's negligible ones are skipped)
        idx = torch.nonzero(mask > 1e-3, as_tuple=True)[0]  # (M,)
        hint = self.layout_hint(ch, idx) if self.cfg.layout_k else None
        e = emb.reshape(B * C, -1)[idx]
        canon = F.softplus(self.decoder(e, hint))  # (M, 1, S, S)
        if hint is not None and self.cfg.hint_direct:
            # the hint itself, at a learned per-chain gain, plus the decoder's part
            gain = F.softplus(self.hint_gain(e))[:, :, None, None]
            canon = canon + gain * Decoder._resize(hint, S)
        theta = self.warp_theta(ch).reshape(B * C, 2, 3)[idx]
        grid = F.affine_grid(
            theta.to(canon.dtype), [idx.numel(), 1, R, R], align_corners=False
        )
        warped = F.grid_sample(
            canon, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        col = (ch.color.reshape(B * C, 3)[idx] * mask[idx, None]).to(warped.dtype)
        light = torch.zeros(B * C, 3, R, R, device=emb.device, dtype=warped.dtype)
        light = light.index_copy(0, idx, warped * col[:, :, None, None])
        return light.reshape(B, C, 3, R, R).sum(1)

    @torch.autocast("cuda", enabled=False)
    def layout_hint(self, ch: ChainInputs, idx: torch.Tensor) -> torch.Tensor:
        """(M, 1, h, h): the first layout_k instances of the chosen chains (flat
        indices into B·6) splatted on the canonical canvas (h = min(layout_res,
        canvas side)), softly saturated at 4. Always float32: coordinates need it."""
        ch = ch.float()
        vals = ch.cont.reshape(-1, len(CHAIN_KEYS))[idx]
        v = {k: denorm(vals[:, j], param_of(k)) for j, k in enumerate(CHAIN_KEYS)}
        v["positionCoupled"] = ch.coupled.reshape(-1)[idx]
        probs = {k: p.reshape(-1, p.shape[-1])[idx] for k, p in ch.probs.items()}
        inst = instance_layout(v, probs, self.cfg.layout_k)
        T = self.cfg.template
        tmpl = (probs["geometry"] @ self.templates.reshape(NUM_GEOMETRIES, -1)).reshape(
            -1, 1, T, T
        )
        # the outline turned by startAngle: its instances turn by as much more, and
        # the gradient (taken on the turned outline) by as much less on the template
        inst["r"] = inst["r"] + v["startAngle"][:, None]
        tmpl = gradient_templates(
            tmpl,
            v["gradientAngle"] + v["startAngle"],
            v["gradientRange.0"],
            v["gradientRange.1"],
        )
        hint = splat_layout(
            inst,
            tmpl,
            min(self.cfg.layout_res, self.cfg.canvas_size),
            VIEW_HALF * self.cfg.canvas,
        )
        return 4 * torch.tanh(hint / 4)

    def single(
        self, batch: dict[str, Any], ch: ChainInputs, emb: torch.Tensor
    ) -> torch.Tensor:
        """Baseline: one decoder for the whole picture from a pooled embedding."""
        nf = self.cfg.n_freq
        lp = schema.LAYER_PARAM
        xf = torch.stack(
            [
                (ch.rot - lp["rotation"].clamp_lo)
                / (lp["rotation"].clamp_hi - lp["rotation"].clamp_lo),
                (ch.lt[..., 0] + 2) / 4,
                (ch.lt[..., 1] + 2) / 4,
                (ch.sx + 2) / 4,
                (ch.sy + 2) / 4,
                ch.mask,
                torch.zeros_like(ch.mask),
            ],
            -1,
        )
        layer = self.layer_mlp(
            torch.cat([emb, fourier(xf, nf), ch.color], -1)
        )  # (B, 6, H)
        pooled = (layer[:, 1:] * ch.mask[:, 1:, None]).sum(1)
        cont = batch["cont"].float()
        scene = cont[:, [cont_index(k) for k in ("scale", "rotation", "position.x")]]
        n_oh = F.one_hot(ch.mask[:, 1:].sum(1).round().long().clamp(0, 5), 6).float()
        g = torch.cat(
            [
                emb[:, 0],
                fourier(scene, nf),
                ch.color[:, 0],
                self.post_embedding(batch),
                n_oh,
                pooled,
            ],
            -1,
        )
        return self.decoder(self.global_mlp(g))
