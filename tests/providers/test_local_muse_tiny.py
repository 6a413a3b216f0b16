"""muse-tiny, the checkpoint shipped in the package, loaded the way users load it."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import muse_sdk as muse
from muse_sdk.models import shipped_model_dir

TINY = shipped_model_dir("muse-tiny")
assert TINY is not None


@pytest.fixture(scope="module")
def tiny():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a 4-layer model gains nothing from more, and CI cores are shared
    gen = muse.load("local:muse-tiny", device="cpu")
    yield gen
    gen.close()
    torch.set_num_threads(before)


def test_ships_a_complete_small_checkpoint() -> None:
    names = {p.name for p in TINY.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert sum(p.stat().st_size for p in TINY.iterdir()) <= 20 * 2**20
    config = json.loads((TINY / "config.json").read_text())
    assert config["model_type"] == "gpt2"


def test_loads_through_muse_load(tiny) -> None:
    assert tiny.provider == "local" and tiny.model == "muse-tiny"
    assert len(tiny.tokenizer) == json.loads((TINY / "config.json").read_text())["vocab_size"]
    assert str(tiny.device) == "cpu"


@pytest.mark.slow
def test_writes_python_not_noise(tiny) -> None:
    result = tiny.generate("class Parser:\n    def __init__(self", max_tokens=60, temperature=0)
    text = result.text
    assert result.usage.completion_tokens > 10
    assert "\ufffd" not in text
    assert sum(ch.isalpha() or ch in " \n_():.,=\"'" for ch in text) / len(text) > 0.9
    assert "self" in text and ("(" in text or ":" in text)


@pytest.mark.slow
def test_stream_and_batch_agree_with_generate(tiny) -> None:
    prompts = ["class Parser:\n    ", "# 写一首关于秋天的诗\n", "for line in"]
    singles = [tiny.generate(p, max_tokens=20) for p in prompts]
    assert tiny.batch(prompts, max_tokens=20).texts == [r.text for r in singles]
    streamed = "".join(c.text for c in tiny.stream(prompts[1], max_tokens=20))
    assert streamed == singles[1].text


def test_batch_equals_single_with_the_default_repetition_penalty(tiny) -> None:
    # Prompts of different lengths force left padding; the shipped penalty (1.3) must ignore it.
    prompts = [
        "def f(x):",
        "import os\nimport sys\n\nclass Reader:\n    def __init__(self, p):",
        "The",
    ]
    single = [tiny.generate(p, max_tokens=20, temperature=0).text for p in prompts]
    assert tiny.batch(prompts, max_tokens=20, temperature=0).texts == single
