"""torch.compile of the models' convolutional hot paths, falling back to eager."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from art_explorer.nets.forward import ForwardModel
from art_explorer.nets.inverse import InverseModel


def compile_hot_paths(net: nn.Module) -> nn.Module:
    """torch.compile the convolutional hot path of a model in place (CUDA training):
    the forward model's decoder (dynamic batch: the number of chains varies), the
    inverse model's backbone. The state_dict keys stay as they are, and the
    data-dependent parts (which chains exist, the layout splat) stay eager."""
    if isinstance(net, ForwardModel):
        dec = net.decoder
        dec.forward = compiled_or_eager(dec.forward, "decoder", dynamic=True)  # type: ignore[method-assign]
    elif isinstance(net, InverseModel):
        bb = net.backbone
        bb.forward = compiled_or_eager(bb.forward, "backbone")  # type: ignore[method-assign]
    return net


def compiled_or_eager(fn: Any, name: str, **compile_kw: Any) -> Any:
    """torch.compile(fn), falling back to fn itself for good, with one warning, when
    the first compiled call fails (inductor needs Triton and a working C compiler,
    which not every GPU machine has). An error of fn itself is raised again by the
    eager call."""
    import warnings

    compiled = torch.compile(fn, **compile_kw)
    ok = [True]

    def call(*args: Any, **kw: Any) -> Any:
        if ok[0]:
            try:
                return compiled(*args, **kw)
            except Exception as e:
                ok[0] = False
                first = (str(e).strip().splitlines() or [""])[-1][:200]
                warnings.warn(
                    f"torch.compile of the {name} failed ({type(e).__name__}: "
                    f"{first}); it runs without compilation",
                    stacklevel=2,
                )
        return fn(*args, **kw)

    return call
