"""predict.py --explore (art_explorer/explore/novelty.py): children of the refs ranked by novelty, perceptual and CLIP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from predict_fixtures import explore_argv, run

import predict
from art_explorer.data import refs_io
from art_explorer.explore import novelty
from art_explorer.predict import models
from art_explorer.scene import rendering, schema
from art_explorer.scoring import metrics

pytest_plugins = ["predict_fixtures"]  # client, target_params, bank_dir, refs_file


def test_select_novel_spreads_picks_and_honours_the_guard() -> None:
    pts = torch.tensor([[0.0], [0.1], [5.0], [5.1], [9.0]])
    novelty_ = torch.tensor([1.0, 1.0, 3.0, 3.0, 9.0])
    ok = torch.tensor([True, True, True, True, False])
    picks = novelty.select_novel(novelty_, lambda i: (pts - pts[i]).abs()[:, 0], ok, 3)
    assert picks[0] == 2 and 4 not in picks
    assert len(set(picks)) == 3 and 3 not in picks[:2]


def test_explore_writes_n_results_and_a_sheet(
    tmp_path: Path, renderer_url: str, refs_file: Path
) -> None:
    res = run(explore_argv(tmp_path, renderer_url, refs_file))
    assert res["ids"] == [0, 1, 2]
    assert len(set(map(schema.canonical_json, res["params"]))) == 3
    refs = {schema.canonical_json(p) for p in refs_io.load_refs(refs_file)}
    assert not refs & set(map(schema.canonical_json, res["params"]))
    for i in res["ids"]:
        p = json.loads((tmp_path / "o" / "params" / f"{i:06d}.json").read_text())
        assert schema.validate_params(p) == p
        assert (tmp_path / "o" / "images" / f"{i:06d}.png").exists()
    assert res["sheet"].endswith("explore-000.png") and Path(res["sheet"]).exists()
    assert res["novelty"][0] == max(res["novelty"])
    assert all(n > 0 for n in res["novelty"])


def test_explore_clip_with_stand_in_weights_and_a_clear_error_without(
    tmp_path: Path, renderer_url: str, refs_file: Path
) -> None:
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    tiny: dict[str, Any] = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    }
    cfg = CLIPConfig(
        text_config=CLIPTextConfig(**tiny, vocab_size=99).to_dict(),
        vision_config=CLIPVisionConfig(**tiny, image_size=32, patch_size=8).to_dict(),
        projection_dim=8,
    )
    clip_dir = tmp_path / "clip"
    CLIPModel(cfg).save_pretrained(clip_dir)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(clip_dir)
    argv = explore_argv(tmp_path, renderer_url, refs_file)
    res = run([*argv, "--clip", "--clip-model", str(clip_dir)])
    assert len(res["ids"]) == 3 and Path(res["sheet"]).exists()
    assert all(0 <= n <= 2 for n in res["novelty"])
    with pytest.raises(predict.UserError, match="huggingface-cli download"):
        run([*argv, "--clip", "--clip-model", str(tmp_path / "no-clip-here")])


def test_explore_checks_the_forward_models_picks_by_real_renders(
    tmp_path: Path,
    renderer_url: str,
    refs_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The forward model's pictures are soft, so a blown-out candidate can pass the
    coverage guard as a bright blur. The picks are rendered for real and any drawn
    outside the guard is replaced: here the model sees every candidate as a faint
    ring, and the real renders above a 5% lit share are dropped."""
    ring = torch.zeros(1, 3, 64, 64)
    ring[:, :, 30:34, 20:44] = 0.5  # 1.5% lit

    monkeypatch.setattr(
        models, "load_models", lambda *a, **k: (object(), None, ["stand-in model"])
    )
    monkeypatch.setattr(
        novelty, "render_forward", lambda fwd, ps: ring.expand(len(ps), -1, -1, -1)
    )
    argv = [*explore_argv(tmp_path, renderer_url, refs_file), "--max-coverage", "0.05"]
    argv[argv.index("--candidates") + 1] = "24"
    logs: list[str] = []
    res = novelty.run_explore(predict.parse_args(argv), log=logs.append)
    client = rendering.RendererClient(url=renderer_url)
    for p in res["params"]:
        img = torch.from_numpy(client.render(p, 64)).permute(2, 0, 1)[None].float()
        assert float(metrics.lit_coverage(img)[0]) <= 0.05
    assert any("picking again" in line for line in logs)
