"""The networks' public names in one place, for callers that import the whole set:
the forward model (forward.py), the inverse model (inverse.py) and its backbones
(backbones.py), their configs (config.py), the batch of encoded params (inputs.py)
and compilation (compile.py). Perceptual distances are in perceptual_distance.py,
checkpoint files in checkpoint_io.py."""

from __future__ import annotations

from art_explorer.nets.backbones import (
    DEFAULT_FREE_BACKBONE,
    DINOV2,
    DINOV2_REPO,
    SCENE_CNN,
    BackboneError,
    SceneCNN,
    create_backbone,
    dinov2_weights_file,
)
from art_explorer.nets.blocks import Decoder, FiLM, SelfAttention2d, UpBlock, mlp
from art_explorer.nets.compile import compile_hot_paths, compiled_or_eager
from art_explorer.nets.config import ConfigError, ForwardConfig, InverseConfig
from art_explorer.nets.forward import (
    MIN_LAYER_SCALE,
    VIEW_HALF,
    ChainInputs,
    ForwardModel,
)
from art_explorer.nets.inputs import (
    CHAIN_CATS,
    CHAIN_KEYS,
    ENCODED_KEYS,
    NUM_GEOMETRIES,
    POST_CATS,
    POST_CONT,
    batch_encode,
    fourier,
)
from art_explorer.nets.inverse import InverseModel
from art_explorer.nets.layout import (
    MAX_INSTANCE_SCALE,
    gradient_templates,
    instance_layout,
    outline_templates,
    splat_layout,
)
from art_explorer.scene.view import linear_to_srgb, srgb_to_linear

__all__ = [
    "CHAIN_CATS",
    "CHAIN_KEYS",
    "DEFAULT_FREE_BACKBONE",
    "DINOV2",
    "DINOV2_REPO",
    "ENCODED_KEYS",
    "MAX_INSTANCE_SCALE",
    "MIN_LAYER_SCALE",
    "NUM_GEOMETRIES",
    "POST_CATS",
    "POST_CONT",
    "SCENE_CNN",
    "VIEW_HALF",
    "BackboneError",
    "ChainInputs",
    "ConfigError",
    "Decoder",
    "FiLM",
    "ForwardConfig",
    "ForwardModel",
    "InverseConfig",
    "InverseModel",
    "SceneCNN",
    "SelfAttention2d",
    "UpBlock",
    "batch_encode",
    "compile_hot_paths",
    "compiled_or_eager",
    "create_backbone",
    "dinov2_weights_file",
    "fourier",
    "gradient_templates",
    "instance_layout",
    "linear_to_srgb",
    "mlp",
    "outline_templates",
    "splat_layout",
    "srgb_to_linear",
]
