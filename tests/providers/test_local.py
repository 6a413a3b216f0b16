"""The local provider against a tiny randomly initialised GPT-2 with a real trained tokenizer."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import muse_sdk as muse  # noqa: E402
from muse_sdk.errors import (  # noqa: E402
    BackendUnavailableError,
    ContextLengthExceededError,
    InvalidConfigError,
    InvalidParameterError,
    InvalidPromptError,
    UnknownModelError,
    UnsupportedParameterError,
)
from muse_sdk.providers.local import LocalGenerator, LocalSettings  # noqa: E402
from muse_sdk.providers.local._decode import TokenText, Tracker  # noqa: E402
from muse_sdk.providers.local._loading import cached_keys  # noqa: E402

EOS = "<|endoftext|>"
CONTEXT = 128
CHINESE = "写一首关于秋天的诗，落叶🍂、明月🌕与归雁。"


def _corpus() -> list[str]:
    import json as json_module
    import textwrap

    sources = [Path(textwrap.__file__), Path(json_module.__file__).parent / "encoder.py"]
    texts = [path.read_text(encoding="utf-8") for path in sources]
    return [*texts, CHINESE * 3, "The quick brown fox jumps over the lazy dog. " * 5]


@pytest.fixture(scope="module", autouse=True)
def _few_threads():
    # The models here are tiny: more threads only add synchronisation, and CI cores are shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GPT-2 (random weights) with a byte-level BPE tokenizer trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = transformers.GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS)
    assert len(tokenizer) == tok.get_vocab_size() > 300  # not the one-token pitfall
    eos = tokenizer.eos_token_id
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=CONTEXT,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
        initializer_range=0.2,  # peaked logits: greedy ties cannot flip between code paths
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    out = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def gen(tiny_dir: Path):
    with LocalGenerator(str(tiny_dir), LocalSettings(device="cpu")) as g:
        yield g


def _hf_greedy(g: LocalGenerator, prompt: str, max_new: int) -> list[int]:
    """transformers' own greedy ``generate``: the reference the lean engine must match."""
    ids = torch.tensor([g.tokenizer(prompt)["input_ids"]])
    out = g.hf_model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new,
        do_sample=False,
        pad_token_id=g.tokenizer.eos_token_id,
    )
    return out[0, ids.shape[1] :].tolist()


# --- generation ------------------------------------------------------------------------------


def test_tokenizer_is_real(gen: LocalGenerator) -> None:
    assert len(gen.tokenizer) > 300
    assert gen.context_length == CONTEXT


@pytest.mark.parametrize("prompt", ["def parse(text):", CHINESE, "The quick"])
def test_greedy_equals_hf_generate_token_for_token(gen: LocalGenerator, prompt: str) -> None:
    result = gen.generate(prompt, max_tokens=24, temperature=0)
    expected = _hf_greedy(gen, prompt, 24)
    assert result.raw["token_ids"][0] == expected
    assert result.text == gen.tokenizer.decode(expected, skip_special_tokens=True)
    assert result.usage.completion_tokens == len(expected)
    assert result.usage.prompt_tokens == len(gen.tokenizer(prompt)["input_ids"])
    assert result.provider == "local"


def test_temperature_none_is_greedy(gen: LocalGenerator) -> None:
    assert (
        gen.generate("x = ", max_tokens=10).text
        == gen.generate("x = ", max_tokens=10, temperature=0).text
    )


def test_seeded_sampling_is_reproducible(gen: LocalGenerator) -> None:
    kw = {"max_tokens": 20, "temperature": 1.0, "top_k": 40, "top_p": 0.95}
    first = gen.generate("import os", seed=7, **kw)
    assert gen.generate("import os", seed=7, **kw).text == first.text
    others = {gen.generate("import os", seed=s, **kw).text for s in (1, 2, 3)}
    assert others - {first.text}


def test_sampling_params_reach_generate(tiny_dir: Path) -> None:
    # The transformers backend (every non-GPT-2 architecture) passes them to generate().
    gen = LocalGenerator(str(tiny_dir), LocalSettings(device="cpu", backend="transformers"))
    seen: dict[str, object] = {}
    original = gen.hf_model.generate

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    gen.hf_model.generate = spy
    try:
        gen.generate(
            "a",
            max_tokens=5,
            temperature=0.7,
            top_k=5,
            top_p=0.9,
            seed=1,
            repetition_penalty=1.3,
            no_repeat_ngram_size=2,
        )
    finally:
        del gen.hf_model.generate
        gen.close()
    assert seen["max_new_tokens"] == 5 and seen["do_sample"] is True
    assert (seen["temperature"], seen["top_k"], seen["top_p"]) == (0.7, 5, 0.9)
    assert (seen["repetition_penalty"], seen["no_repeat_ngram_size"]) == (1.3, 2)


def test_stop_string_is_trimmed(gen: LocalGenerator) -> None:
    full = gen.generate("class A:", max_tokens=40, temperature=0).text
    stop = full[6:9]
    assert stop and len(full) > 12
    result = gen.generate("class A:", max_tokens=40, temperature=0, stop=[stop, "§never§"])
    assert result.text == full[: full.find(stop)]
    assert result.finish_reason == "stop"


def test_limit_gives_length(gen: LocalGenerator) -> None:
    result = gen.generate("while True:", max_tokens=7, temperature=0)
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 7


def test_eos_gives_stop(gen: LocalGenerator, tiny_dir: Path, tmp_path: Path) -> None:
    # Declare a token the model produces greedily its EOS: generation must end right there.
    tokens = _hf_greedy(gen, "for i in", 12)
    cut = next(i for i in range(1, len(tokens)) if tokens[i] not in tokens[:i])
    eos_dir = tmp_path / "eos-model"
    shutil.copytree(tiny_dir, eos_dir)
    cfg_path = eos_dir / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "eos_token_id": tokens[cut]}))
    with LocalGenerator(str(eos_dir), LocalSettings(device="cpu")) as g:
        result = g.generate("for i in", max_tokens=20, temperature=0)
        streamed = list(g.stream("for i in", max_tokens=20, temperature=0))
    assert result.finish_reason == "stop" == streamed[-1].finish_reason
    assert result.raw["token_ids"][0] == tokens[: cut + 1]
    assert result.text == gen.tokenizer.decode(tokens[:cut])


def test_n_choices(gen: LocalGenerator) -> None:
    result = gen.generate("def f(", max_tokens=12, temperature=1.0, seed=3, n=3)
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert len(set(result.texts)) > 1
    assert result.usage.completion_tokens == sum(len(t) for t in result.raw["token_ids"])
    greedy = gen.generate("def f(", max_tokens=12, temperature=0, n=2)
    assert greedy.texts[0] == greedy.texts[1] == gen.generate("def f(", max_tokens=12).text


# --- batching --------------------------------------------------------------------------------

PROMPTS = ["a", "def main():\n    return", CHINESE, "import json", "The quick brown fox", "x"]


@pytest.mark.parametrize("backend", ["transformers", "lean"])
def test_batch_equals_single_for_greedy(tiny_dir: Path, backend: str) -> None:
    settings = LocalSettings(device="cpu", batch_size=4, backend=backend)
    with LocalGenerator(str(tiny_dir), settings) as g:
        if backend == "lean":  # the engine decodes every row of the batch in one loop
            batch = g.batch(PROMPTS, max_tokens=16, temperature=0).raise_for_errors()
            assert g.engine.counts()["active"] == 0
            singles = [g.generate(p, max_tokens=16, temperature=0) for p in PROMPTS]
            assert [r.raw["token_ids"] for r in batch] == [r.raw["token_ids"] for r in singles]
            return
        calls = []
        original = g.hf_model.generate

        def spy(*args, **kwargs):
            calls.append(kwargs["input_ids"].shape)
            return original(*args, **kwargs)

        g.hf_model.generate = spy
        batch = g.batch(PROMPTS, max_tokens=16, temperature=0).raise_for_errors()
        assert sorted(shape[0] for shape in calls) == [2, 4]  # real batched passes, not a loop
        del g.hf_model.generate
        singles = [g.generate(p, max_tokens=16, temperature=0) for p in PROMPTS]
    assert [r.raw["token_ids"] for r in batch] == [r.raw["token_ids"] for r in singles]
    assert [r.text for r in batch] == [r.text for r in singles]
    assert [r.finish_reason for r in batch] == [r.finish_reason for r in singles]
    assert [r.usage for r in batch] == [r.usage for r in singles]


def test_batch_with_n_and_stop(gen: LocalGenerator) -> None:
    batch = gen.batch(PROMPTS[:3], max_tokens=10, temperature=0, n=2, stop=["e"])
    for prompt, result in zip(PROMPTS[:3], batch.raise_for_errors(), strict=True):
        single = gen.generate(prompt, max_tokens=10, temperature=0, n=2, stop=["e"])
        assert result.texts == single.texts and "e" not in result.text


def test_batch_item_failure_stays_alone(gen: LocalGenerator) -> None:
    batch = gen.batch(["ok", "word " * 200, ""], max_tokens=5)
    assert batch.results[0] is not None
    assert isinstance(batch.errors[1], ContextLengthExceededError)
    assert isinstance(batch.errors[2], InvalidPromptError)


async def test_abatch(gen: LocalGenerator) -> None:
    results = (await gen.abatch(PROMPTS, max_tokens=8)).raise_for_errors()
    assert [r.text for r in results] == [gen.generate(p, max_tokens=8).text for p in PROMPTS]


# --- streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"temperature": 0},
        {"temperature": 1.0, "seed": 11},
        {"temperature": 0.9, "seed": 5, "n": 2},
        {"temperature": 0, "stop": ["的", "e"]},
    ],
)
def test_stream_equals_generate(gen: LocalGenerator, params: dict) -> None:
    full = gen.generate(CHINESE, max_tokens=30, **params)
    chunks = list(gen.stream(CHINESE, max_tokens=30, **params))
    for choice in full.choices:
        streamed = "".join(c.text for c in chunks if c.index == choice.index)
        assert streamed == choice.text
    finals = [c for c in chunks if c.finish_reason is not None]
    assert [c.finish_reason for c in finals] == [c.finish_reason for c in full.choices]
    assert finals[-1].usage == full.usage


def test_stream_never_splits_a_character(gen: LocalGenerator) -> None:
    text = CHINESE + " naïve 🎉🇨🇳 déjà vu"
    ids = gen.tokenizer(text)["input_ids"]
    assert len(ids) > len(text)  # characters really are split across tokens
    pieces: list[str] = []
    tracker = Tracker(1, TokenText(gen.tokenizer), frozenset(), (), lambda _, t: pieces.append(t))
    for token_id in ids:
        tracker(torch.tensor([[token_id]]), None)
    tracker.finish()
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)


async def test_astream_equals_generate(gen: LocalGenerator) -> None:
    chunks = [c async for c in gen.astream(CHINESE, max_tokens=12)]
    assert "".join(c.text for c in chunks) == gen.generate(CHINESE, max_tokens=12).text


def test_stream_closed_early_releases_the_model(gen: LocalGenerator) -> None:
    stream = gen.stream("def", max_tokens=100, temperature=0)
    next(stream)
    stream.close()
    assert gen.generate("def", max_tokens=3).usage.completion_tokens == 3  # lock was freed


# --- limits and bad input --------------------------------------------------------------------


def test_context_length_error_names_both_numbers(gen: LocalGenerator) -> None:
    prompt = "word " * 100
    prompt_tokens = len(gen.tokenizer(prompt)["input_ids"])
    with pytest.raises(ContextLengthExceededError) as info:
        gen.generate(prompt, max_tokens=50)
    err = info.value
    assert (err.prompt_tokens, err.max_tokens, err.context_length) == (prompt_tokens, 50, CONTEXT)
    assert str(prompt_tokens) in str(err) and "50" in str(err) and "truncate='left'" in str(err)


def test_truncate_left(tiny_dir: Path) -> None:
    prompt = "word " * 100
    with LocalGenerator(str(tiny_dir), LocalSettings(device="cpu", truncate="left")) as g:
        result = g.generate(prompt, max_tokens=50, temperature=0)
        assert result.usage.prompt_tokens == CONTEXT - 50
        ids = g.tokenizer(prompt)["input_ids"][-(CONTEXT - 50) :]
        assert result.text == g.generate(g.tokenizer.decode(ids), max_tokens=50).text
        with pytest.raises(ContextLengthExceededError):
            g.generate("hi", max_tokens=CONTEXT)


@pytest.mark.parametrize("bad", ["", "   ", 42, None, []])
def test_bad_prompts(gen: LocalGenerator, bad: object) -> None:
    with pytest.raises(InvalidPromptError):
        gen.generate(bad)  # type: ignore[arg-type]


def test_absurd_max_tokens(gen: LocalGenerator) -> None:
    with pytest.raises(InvalidParameterError):
        gen.generate("hi", max_tokens=10**12)
    with pytest.raises(InvalidParameterError):
        gen.generate("hi", max_tokens=0)
    with pytest.raises(ContextLengthExceededError):
        gen.generate("hi", max_tokens=500_000)


def test_chat_messages_without_template(gen: LocalGenerator) -> None:
    with pytest.raises(UnsupportedParameterError, match="chat template"):
        gen.generate([{"role": "user", "content": "hi"}])


# --- device, loading, lifecycle --------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_absent(tiny_dir: Path, device: str) -> None:
    with pytest.raises(BackendUnavailableError, match="device='cpu'") as info:
        muse.load(f"local:{tiny_dir}", device=device)
    assert "auto" in str(info.value)


def test_device_is_validated() -> None:
    with pytest.raises(InvalidConfigError, match="cuda:N"):
        muse.load("local:muse-tiny", device="gpu")


def test_offline_unknown_hub_model_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # More in test_local_hub.py: known models without weights, typos, a reachable hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnknownModelError) as info:
        muse.load("local:gpt2-muse-test-not-cached", device="cpu")
    message = str(info.value)
    for hint in ("HF_HUB_OFFLINE is set", "muse-tiny", "download gpt2-muse-test-not-cached"):
        assert hint in message


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="does not exist"):
        muse.load(f"local:{tmp_path}/nope/model")
    with pytest.raises(BackendUnavailableError, match="loadable"):
        muse.load(f"local:{tmp_path}")


def test_missing_extra(monkeypatch: pytest.MonkeyPatch, tiny_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'muse-sdk\[local\]'"):
        LocalGenerator(str(tiny_dir))


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, muse_sdk.providers.local as m; from muse_sdk.config import Profile;"
        "assert m.LocalSettings().device == 'auto';"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_cached_per_model_device_dtype_and_freed(tiny_dir: Path) -> None:
    a = LocalGenerator(str(tiny_dir), LocalSettings(device="cpu"))
    b = muse.load(f"local:{tiny_dir}", device="auto")
    c = LocalGenerator(str(tiny_dir), LocalSettings(device="cpu", dtype="bfloat16"))
    assert a._loaded is b._loaded and a._loaded is not c._loaded
    assert c.hf_model.dtype == torch.bfloat16 and a.hf_model.dtype == torch.float32
    assert c.generate("def", max_tokens=4).usage.completion_tokens == 4
    key = a._key
    a.close()
    assert key in cached_keys()  # b still holds it
    b.close()
    c.close()
    assert key not in cached_keys() and c._key not in cached_keys()
    with pytest.raises(BackendUnavailableError, match="closed"):
        a.generate("hi")
    a.close()  # closing twice is harmless


def test_unclosed_generator_is_freed_when_collected(tiny_dir: Path) -> None:
    import gc

    g = LocalGenerator(str(tiny_dir), LocalSettings(device="cpu", dtype="float16"))
    key = g._key
    assert key in cached_keys()
    del g
    gc.collect()
    assert key not in cached_keys()


def test_concurrent_threads_are_safe(gen: LocalGenerator) -> None:
    expected = {p: gen.generate(p, max_tokens=10).text for p in PROMPTS}
    sampled = gen.generate("z", max_tokens=10, temperature=1.0, seed=9).text
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def work(prompt: str) -> None:
        try:
            results.append((prompt, gen.generate(prompt, max_tokens=10).text))
            results.append(("z", gen.generate("z", max_tokens=10, temperature=1.0, seed=9).text))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in PROMPTS * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(text == (sampled if p == "z" else expected[p]) for p, text in results)


async def test_agenerate_concurrently(gen: LocalGenerator) -> None:
    results = await asyncio.gather(*(gen.agenerate(p, max_tokens=8) for p in PROMPTS))
    assert [r.text for r in results] == [gen.generate(p, max_tokens=8).text for p in PROMPTS]


# --- decoding units --------------------------------------------------------------------------


def test_stop_matcher_holds_back_partial_stops() -> None:
    from muse_sdk.providers.local._decode import StopMatcher

    matcher = StopMatcher(["\n\n", "END"])
    assert matcher.feed("abc\n") == ("abc", False)
    assert matcher.feed("xE") == ("\nx", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("Dtail") == ("", True)
    other = StopMatcher(["END"])
    assert other.feed("EN") == ("", False)
    assert other.feed("x") == ("ENx", False)
    assert other.flush() == ""


def test_text_decoder_fallback_holds_back_partial_characters() -> None:
    from muse_sdk.providers.local._decode import _TextDecoder

    data = "秋🍂".encode()
    decoder = _TextDecoder(lambda ids: bytes(ids).decode("utf-8", errors="replace"))
    pieces = [decoder.feed(b) for b in data] + [decoder.flush()]
    assert "".join(pieces) == "秋🍂"
    assert all("\ufffd" not in p for p in pieces)


# --- the CUDA path, with a stand-in for torch (no GPU here) -----------------------------------


def _fake_torch(gpus: int, bf16: bool = True):
    from types import SimpleNamespace

    cuda = SimpleNamespace(
        is_available=lambda: gpus > 0,
        device_count=lambda: gpus,
        current_device=lambda: 0,
        is_bf16_supported=lambda: bf16,
    )
    return SimpleNamespace(
        cuda=cuda,
        version=SimpleNamespace(cuda="12.4" if gpus else None),
        device=torch.device,
        float16=torch.float16,
        float32=torch.float32,
        bfloat16=torch.bfloat16,
    )


def test_cuda_device_selection() -> None:
    from muse_sdk.providers.local._device import resolve_device, resolve_dtype

    two = _fake_torch(2)
    assert resolve_device(two, "auto") == torch.device("cuda", 0)
    assert resolve_device(two, "cuda:1") == torch.device("cuda", 1)
    assert resolve_dtype(two, "auto", torch.device("cuda", 0)) == torch.float16
    assert resolve_dtype(two, "auto", torch.device("cpu")) == torch.float32
    with pytest.raises(BackendUnavailableError, match=r"cuda:0 to cuda:1"):
        resolve_device(two, "cuda:2")
    with pytest.raises(BackendUnavailableError, match="float16"):
        resolve_dtype(_fake_torch(1, bf16=False), "bfloat16", torch.device("cuda", 0))
    none = _fake_torch(0)
    assert resolve_device(none, "auto") == torch.device("cpu")
    with pytest.raises(BackendUnavailableError, match="CPU-only"):
        resolve_device(none, "cuda")
