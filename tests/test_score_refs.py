"""score_refs.py and art_explorer.scoring (aesthetic, vlm, scorers, ref_scores):
reply parsing, the heuristic's ranking on real renders, the cache, the output file,
clear errors, and the Qwen2-VL path on a tiny stand-in model that the test builds
itself (random weights, an offline tokenizer)."""

from __future__ import annotations

import inspect
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import score_refs
from art_explorer import utils
from art_explorer.data import refs_io
from art_explorer.scene import rendering, sampling, schema
from art_explorer.scoring import aesthetic, ref_scores, scorers, vlm

SIZE = 64  # px: render size for the script runs (the heuristic resizes to 256²)


def write_refs(path: Path, params: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(schema.to_prefixed(p)) + "\n" for p in params))
    return path


@pytest.fixture
def refs_file(tmp_path: Path) -> Path:
    rng = random.Random(3)
    return write_refs(
        tmp_path / "refs.jsonl", [sampling.sample_params(rng) for _ in range(4)]
    )


def script_args(tmp: Path, refs: Path, url: str, *extra: str) -> list[str]:
    return [
        "--refs", str(refs), "--out", str(tmp / "scored.jsonl"),
        "--cache", str(tmp / "cache.json"), "--sheet", str(tmp / "scored.png"),
        "--renderer-url", url, "--size", str(SIZE), "--no-autostart", *extra,
    ]  # fmt: skip


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(utils.ROOT / "score_refs.py"), *argv],
        capture_output=True, text=True, timeout=120, cwd=utils.ROOT,
    )  # fmt: skip


# ----------------------------------------------------------------------------------
# Pure pieces


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("0.85", 0.85),
        ("Score: 0.3.", 0.3),
        (".7", 0.7),
        ("85%", 0.85),
        ("8/10", 0.8),
        ("7 / 10 overall", 0.7),
        ("7", 0.7),
        ("85", 0.85),
        ("1", 1.0),
        ("0", 0.0),
        ("-0.2", 0.0),
        ("150%", 1.0),
        ("400", 1.0),
        ("I'd say 0.9, maybe 0.1", 0.9),
    ],
)
def test_parse_score_reads_the_first_number(reply: str, score: float) -> None:
    assert vlm.parse_score(reply) == pytest.approx(score)


@pytest.mark.parametrize("reply", ["", "striking!", "zebra zebra", "n/a"])
def test_parse_score_without_a_number_is_none(reply: str) -> None:
    assert vlm.parse_score(reply) is None


def test_defaults_and_sheet_next_to_out() -> None:
    args = score_refs.parse_args([])
    assert (args.refs, args.out, args.cache, args.sheet) == (
        "references/refs.jsonl",
        "references/refs-scored.jsonl",
        "references/.score-cache.json",
        "references/refs-scored.png",
    )
    assert (args.scorer, args.vlm_model, args.fresh) == (
        "auto",
        vlm.DEFAULT_VLM,
        False,
    )
    assert score_refs.parse_args(["--out", "x/s.jsonl"]).sheet == "x/s.png"
    assert score_refs.parse_args(["--sheet", ""]).sheet == ""


def test_create_scorer_names() -> None:
    assert isinstance(scorers.create_scorer("heuristic"), aesthetic.HeuristicScorer)
    with pytest.raises(scorers.ScorerError, match="unknown scorer 'clip'"):
        scorers.create_scorer("clip")


def test_auto_without_weights_says_so_and_uses_the_heuristic(tmp_path: Path) -> None:
    said: list[str] = []
    missing = str(tmp_path / "no-such-model")
    scorer = scorers.create_scorer("auto", model=missing, log=said.append)
    assert isinstance(scorer, aesthetic.HeuristicScorer)
    assert len(said) == 1 and said[0].startswith("scorer: heuristic")
    assert missing in said[0]
    with pytest.raises(scorers.ScorerError, match="no-such-model: no such folder"):
        scorers.create_scorer("qwen2-vl", model=missing)


def test_find_local_vlm_reads_the_hf_cache_layout(tmp_path: Path) -> None:
    """A hub id resolves to the snapshot refs/main names, as transformers does
    offline; a snapshot without complete weights does not count."""
    repo = tmp_path / "hub" / "models--org--tiny-vl"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text("{}")
    cache = str(tmp_path / "hub")
    assert vlm.find_local_vlm("org/tiny-vl", cache_dir=cache) is None
    index = {"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}}
    (snap / "model.safetensors.index.json").write_text(json.dumps(index))
    (snap / "model-1.safetensors").write_bytes(b"")
    assert vlm.find_local_vlm("org/tiny-vl", cache_dir=cache) is None
    (snap / "model-2.safetensors").write_bytes(b"")
    assert vlm.find_local_vlm("org/tiny-vl", cache_dir=cache) == snap
    assert vlm.find_local_vlm("org/other", cache_dir=cache) is None


# ----------------------------------------------------------------------------------
# The heuristic on real renders


def test_heuristic_ranks_blank_whiteout_and_noise_below_rich(renderer_url: str) -> None:
    base = schema.default_params()
    rich = schema.validate_params(
        {
            **base,
            "layers": [
                {
                    "rotation": 0.6,
                    "position": {"x": 0, "y": 0},
                    "scale": {"x": 1, "y": 1},
                }
            ],
            "color": "#FFB38A",
            "scale": 0.85,
            "position": {"x": 0.0, "y": 0.0},
        }
    )
    poor = {
        # drawn off-screen (Scene.position moves the base chain; no layers)
        "blank": {**base, "position": {"x": 40.0, "y": 40.0}, "layers": []},
        "nearly empty": {**base, "repetitions": 1, "geoWidth": 0.001},
        "white-out": {
            **base,
            "repetitions": 500,
            "scaleFactor": 1.0,
            "geoWidth": 0.1,
            "alphaFactor": 1.0,
            "alphaProgression": "inverse",
            "geometry": "spiral",
            "rotationFactor": 0.013,
            "scale": 1.5,
        },
        "noise": {
            **base,
            "repetitions": 1,
            "geoWidth": 0.001,
            "layers": [],
            "noiseEnabled": True,
            "noiseDensity": 1.0,
            "noiseOpacity": 0.3,
        },
    }
    client = rendering.RendererClient(url=renderer_url)
    scorer = scorers.create_scorer("heuristic")
    try:
        rich_score = scorer.score(client.render(rich, 256)).score
        poor_scores = {
            k: scorer.score(client.render(schema.validate_params(p), 256)).score
            for k, p in poor.items()
        }
    finally:
        client.close()
    assert 0.3 < rich_score <= 1.0
    for name, s in poor_scores.items():
        assert 0.0 <= s < rich_score / 2, (name, s, rich_score)


def test_heuristic_score_does_not_depend_on_render_size(renderer_url: str) -> None:
    client = rendering.RendererClient(url=renderer_url)
    scorer = aesthetic.HeuristicScorer()
    try:
        small, large = (
            scorer.score(client.render(schema.default_params(), s)).score
            for s in (256, 512)
        )
    finally:
        client.close()
    assert small == pytest.approx(large, abs=0.1)


# ----------------------------------------------------------------------------------
# The script


def scores_by_line(path: Path) -> dict[int, dict[str, Any]]:
    return {obj["line"]: obj for obj in map(json.loads, path.read_text().splitlines())}


def test_scores_sorted_readable_and_cached(
    tmp_path: Path, refs_file: Path, renderer_url: str, capsys: Any
) -> None:
    argv = script_args(tmp_path, refs_file, renderer_url, "--scorer", "heuristic")
    first = score_refs.main(score_refs.parse_args(argv))
    out = capsys.readouterr().out
    assert "scored 4 refs, 0 from the cache (heuristic, 64px)" in out
    assert len(first) == 4
    scores = [s for _, s in first]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    loaded = refs_io.load_scored_refs(tmp_path / "scored.jsonl")
    assert [(schema.canonical_json(p), s) for p, s in loaded] == [
        (schema.canonical_json(p), s) for p, s in first
    ]
    lines = scores_by_line(tmp_path / "scored.jsonl")
    assert sorted(lines) == [1, 2, 3, 4]
    assert {o["scorer"] for o in lines.values()} == {"heuristic"}
    refs = refs_io.load_refs(refs_file)
    assert all(
        schema.canonical_json(lines[n + 1]["params"]) == schema.canonical_json(p)
        for n, p in enumerate(refs)
    )
    # The top and bottom refs are printed, and the contact sheet holds every tile.
    assert re.search(r"^  \d\.\d{3}  line   \d  geo=", out, re.M)
    from PIL import Image

    with Image.open(tmp_path / "scored.png") as sheet:
        assert sheet.width >= 4 * SIZE and sheet.height >= SIZE

    # A second run scores nothing: it takes the cached score, even a doctored one.
    cache_path = tmp_path / "cache.json"
    cache = json.loads(cache_path.read_text())
    key = ref_scores.ScoreCache.key(aesthetic.HeuristicScorer(), SIZE, refs[2])
    assert set(cache["scores"]) == {
        ref_scores.ScoreCache.key(aesthetic.HeuristicScorer(), SIZE, p) for p in refs
    }
    cache["scores"][key]["score"] = 0.123456
    cache_path.write_text(json.dumps(cache))
    second = score_refs.main(score_refs.parse_args([*argv, "--sheet", ""]))
    assert "scored 0 refs, 4 from the cache" in capsys.readouterr().out
    assert 0.123456 in [s for _, s in second]
    assert scores_by_line(tmp_path / "scored.jsonl")[3]["score"] == 0.123456

    # A new ref is the only one scored.
    write_refs(refs_file, [*refs, sampling.sample_params(random.Random(9))])
    score_refs.main(score_refs.parse_args(argv))
    assert "scored 1 refs, 4 from the cache" in capsys.readouterr().out

    # --fresh scores everything again and replaces the doctored score.
    fresh = score_refs.main(score_refs.parse_args([*argv, "--fresh"]))
    assert "scored 5 refs, 0 from the cache" in capsys.readouterr().out
    assert 0.123456 not in [s for _, s in fresh]
    assert scores_by_line(tmp_path / "scored.jsonl")[3]["score"] == lines[3]["score"]


def test_interrupted_scoring_keeps_what_it_scored(
    tmp_path: Path,
    refs_file: Path,
    renderer_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    argv = script_args(tmp_path, refs_file, renderer_url, "--scorer", "heuristic")
    real = aesthetic.HeuristicScorer.score
    calls: list[int] = []

    def ctrl_c_at_the_third(self: Any, img: Any) -> aesthetic.Scored:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, img)

    monkeypatch.setattr(aesthetic.HeuristicScorer, "score", ctrl_c_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        score_refs.main(score_refs.parse_args(argv))
    assert "stopped: the 2 new scores are kept in" in capsys.readouterr().out
    monkeypatch.undo()
    score_refs.main(score_refs.parse_args(argv))
    assert "scored 2 refs, 2 from the cache" in capsys.readouterr().out


def test_no_refs_writes_an_empty_file(tmp_path: Path, capsys: Any) -> None:
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    (tmp_path / "empty.jsonl").write_text("\n")
    argv = script_args(tmp_path, tmp_path / "empty.jsonl", url)
    assert score_refs.main(score_refs.parse_args(argv)) == []
    assert "nothing to score" in capsys.readouterr().out
    assert (tmp_path / "scored.jsonl").read_text() == ""


def test_a_missing_refs_file_is_an_error_and_keeps_the_scores(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    (tmp_path / "scored.jsonl").write_text("kept\n")
    argv = script_args(tmp_path, tmp_path / "typo.jsonl", url)
    with pytest.raises(refs_io.RefsError, match="no such refs file"):
        score_refs.main(score_refs.parse_args(argv))
    assert (tmp_path / "scored.jsonl").read_text() == "kept\n"


def test_broken_refs_line_exits_1_naming_the_line(
    tmp_path: Path, refs_file: Path
) -> None:
    refs_file.write_text(refs_file.read_text() + '{"Scalars.repetitions": \n')
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    res = run_script(*script_args(tmp_path, refs_file, url, "--scorer", "heuristic"))
    assert res.returncode == 1
    assert f"error: {refs_file} line 5: not JSON" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / "scored.jsonl").exists()


def test_renderer_down_exits_1_naming_the_url(tmp_path: Path, refs_file: Path) -> None:
    url = f"http://127.0.0.1:{rendering.free_port()}/api/raster"
    res = run_script(*script_args(tmp_path, refs_file, url, "--scorer", "heuristic"))
    assert res.returncode == 1
    assert f"error: renderer at {url} did not answer" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


# ----------------------------------------------------------------------------------
# Qwen2-VL on a tiny stand-in

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2-VL-Instruct's chat template, trimmed of video and vision ids.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_standin(folder: Path, answer: str) -> Path:
    """A tiny random Qwen2-VL (1 text layer, 1 vision block, hidden size 32) with a
    word-level tokenizer, saved like a hub snapshot. Its lm_head is zero, so every
    logit ties and greedy decoding repeats token 0, which is `answer`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )

    words = [answer, "[UNK]", "system", "user", "assistant", "You", "are", "a"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS,
        chat_template=CHAT_TEMPLATE,
    )
    ids: dict[str, int] = {}
    for t in SPECIAL_TOKENS:
        i = tokenizer.convert_tokens_to_ids(t)
        assert isinstance(i, int)
        ids[t] = i
    extra: dict[str, Any] = {}
    if "video_processor" in inspect.signature(Qwen2VLProcessor.__init__).parameters:
        from transformers import Qwen2VLVideoProcessor  # transformers ≥ 5

        extra["video_processor"] = Qwen2VLVideoProcessor()
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        **extra,
    )
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 512,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 2, 4],  # sums to head_dim / 2 = 8
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config)
    with torch.no_grad():
        model.lm_head.weight.zero_()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two stand-ins: one answers "0.8", the other "meh" (no number)."""
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("standins")
    return {a: build_standin(root / a, a) for a in ("0.8", "meh")}


def test_qwen2vl_standin_loads_generates_and_parses(
    standins: dict[str, Path], renderer_url: str
) -> None:
    folder = standins["0.8"]
    said: list[str] = []
    scorer = scorers.create_scorer("auto", model=str(folder), log=said.append)
    assert isinstance(scorer, vlm.Qwen2VLScorer)
    assert said == [f"scorer: qwen2-vl ({folder}; weights in {folder})"]
    client = rendering.RendererClient(url=renderer_url)
    try:
        img = client.render(schema.default_params(), 112)
    finally:
        client.close()
    reply = scorer.ask(img)
    assert reply.startswith("0.8")
    result = scorer.score(img)
    assert (result.score, result.scorer, result.fallback_from) == (0.8, "qwen2-vl", "")
    assert scorer._model is not None and str(scorer._model.dtype) == "torch.float32"


def test_qwen2vl_unreadable_reply_falls_back_and_is_recorded(
    standins: dict[str, Path], tmp_path: Path, refs_file: Path, renderer_url: str,
    capsys: Any,
) -> None:  # fmt: skip
    argv = script_args(
        tmp_path, refs_file, renderer_url,
        "--scorer", "qwen2-vl", "--vlm-model", str(standins["meh"]), "--sheet", "",
    )  # fmt: skip
    result = score_refs.main(score_refs.parse_args(argv))
    captured = capsys.readouterr()
    assert len(result) == 4
    assert captured.err.count("no number in it; using the heuristic's") == 4
    assert "'meh meh" in captured.err
    heuristic = aesthetic.HeuristicScorer()
    client = rendering.RendererClient(url=renderer_url)
    try:
        for obj in scores_by_line(tmp_path / "scored.jsonl").values():
            assert obj["scorer"] == "heuristic"
            assert obj["fallback_from"] == "qwen2-vl"
            assert obj["reply"].startswith("meh")
            expected = heuristic.score(client.render(obj["params"], SIZE)).score
            assert obj["score"] == pytest.approx(expected, abs=1e-6)
    finally:
        client.close()
    cache = json.loads((tmp_path / "cache.json").read_text())
    assert all(
        k.startswith(f"qwen2-vl:{standins['meh']}@{SIZE}|") for k in cache["scores"]
    )


def test_qwen2vl_standin_through_main(
    standins: dict[str, Path], tmp_path: Path, refs_file: Path, renderer_url: str
) -> None:
    argv = script_args(
        tmp_path, refs_file, renderer_url,
        "--scorer", "qwen2-vl", "--vlm-model", str(standins["0.8"]),
    )  # fmt: skip
    result = score_refs.main(score_refs.parse_args(argv))
    assert [s for _, s in result] == [0.8] * 4
    lines = scores_by_line(tmp_path / "scored.jsonl")
    assert {o["scorer"] for o in lines.values()} == {"qwen2-vl"}
    assert all(o["reply"].startswith("0.8") for o in lines.values())
