"""The lean GPT-2 (plain torch, slotted KV cache) against transformers' GPT2LMHeadModel."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from muse_sdk.errors import BackendUnavailableError  # noqa: E402
from muse_sdk.models import shipped_model_dir  # noqa: E402
from muse_sdk.providers.local._decode import TokenText  # noqa: E402
from muse_sdk.providers.local._gpt2 import (  # noqa: E402
    LeanGPT2,
    UnsupportedCheckpointError,
    _runs,
    check_checkpoint,
)
from muse_sdk.providers.local._gpt2_graphs import bucket  # noqa: E402
from muse_sdk.providers.local._lean_tokenizer import LeanTokenizer  # noqa: E402

TINY = shipped_model_dir("muse-tiny")
CPU = torch.device("cpu")
ATOL = 1e-4


def _hf(directory: Path, attn: str | None = None) -> Any:
    options = {"attn_implementation": attn} if attn else {}
    return transformers.GPT2LMHeadModel.from_pretrained(
        directory, dtype=torch.float32, **options
    ).eval()


def _save_random(directory: Path, seed: int = 0, **config: Any) -> Path:
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**config)).eval()
    model.save_pretrained(directory, safe_serialization=True)
    shutil.copy(TINY / "tokenizer.json", directory / "tokenizer.json")
    return directory


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random GPT-2-small-shape checkpoint (124M), built once per session."""
    return _save_random(tmp_path_factory.mktemp("gpt2-small"))


@pytest.fixture(scope="session")
def pairs(small_dir: Path) -> dict[str, tuple[Any, LeanGPT2]]:
    """(transformers model, lean model) for muse-tiny and the GPT-2-small shape."""
    out = {}
    for name, directory in (("tiny", TINY), ("small", small_dir)):
        lean = LeanGPT2.from_pretrained(directory, device=CPU, dtype=torch.float32)
        out[name] = (_hf(directory), lean)
    return out


@pytest.fixture(params=["tiny", "small"])
def pair(request: pytest.FixtureRequest, pairs: dict[str, tuple[Any, LeanGPT2]]) -> Any:
    hf, lean = pairs[request.param]
    lean.allocate(4, 64)
    return hf, lean


def _ids(vocab: int, *shape: int, seed: int = 1) -> Any:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def _reference(hf: Any, ids: Any) -> Any:
    with torch.inference_mode():
        return hf(ids).logits.float()


def _close(a: Any, b: Any, atol: float = ATOL) -> None:
    diff = (a - b).abs().max().item()
    assert diff <= atol, diff


def test_forward_matches_transformers(pair: Any) -> None:
    hf, lean = pair
    ids = _ids(lean.vocab_size, 2, 12)
    positions = torch.arange(12).expand(2, 12)
    _close(lean.forward(ids, positions), _reference(hf, ids))


def test_prefill_then_decode_matches_full_sequence(pair: Any) -> None:
    hf, lean = pair
    seq = _ids(lean.vocab_size, 7).tolist()
    logits = [lean.prefill(2, torch.tensor(seq))]
    for _ in range(5):  # feed the argmax, as greedy decoding does
        seq.append(int(logits[-1].argmax()))
        step = lean.decode(torch.tensor([2]), torch.tensor([seq[-1]]), torch.tensor([len(seq) - 1]))
        assert step.shape == (1, lean.vocab_size) and step.dtype == torch.float32
        logits.append(step[0])
    reference = _reference(hf, torch.tensor([seq]))[0]
    _close(torch.stack(logits), reference[6:])


@pytest.mark.parametrize("order", [[0, 1, 3], [3, 0, 1, 2]])
def test_batched_rows_equal_rows_alone(pair: Any, order: list[int]) -> None:
    """Rows in any slot order (one run of slots, several, descending) decode as if alone."""
    _, lean = pair
    prompts = [_ids(lean.vocab_size, n + 3, seed=n) for n in range(len(order))]
    first = lean.prefill_many(order, prompts)
    for row, prompt in enumerate(prompts):  # batched prefill == one prompt at a time
        _close(first[row], lean.prefill(order[row], prompt))
    slots = torch.tensor(order)
    tokens = torch.arange(len(order)) * 11 + 5
    positions = torch.tensor([len(p) for p in prompts])
    together = lean.decode(slots, tokens, positions)
    for row in range(len(order)):
        lean.prefill_many(order, prompts)  # rewind: each row alone from the same cache
        alone = lean.decode(slots[row : row + 1], tokens[row : row + 1], positions[row : row + 1])
        _close(together[row], alone[0], 1e-5)


def test_runs_split_a_batch_into_stretches_of_slots() -> None:
    assert _runs([4, 5, 6], [9, 3, 7]) == [(0, 3, 4, 10)]
    assert _runs([3, 0, 1, 7], [1, 2, 5, 0]) == [(0, 1, 3, 2), (1, 3, 0, 6), (3, 4, 7, 1)]


def test_plain_addmm_path_matches_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without oneDNN (other CPUs, fp16, CUDA) the matmuls are transformers' own addmm."""
    from muse_sdk.providers.local import _gpt2

    monkeypatch.setattr(_gpt2, "_onednn", lambda dtype: False)
    lean = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=torch.float32)
    assert not lean.layers[0].qkv.onednn
    ids = _ids(4096, 2, 10)
    _close(lean.forward(ids), _reference(_hf(TINY), ids))
    lean.allocate(2, 16)
    lean.prefill_many([0, 1], [ids[0], ids[1, :4]])
    out = lean.decode(
        torch.tensor([1, 0]), torch.tensor([int(ids[1, 4]), 7]), torch.tensor([4, 10])
    )
    _close(out[0], _reference(_hf(TINY), ids[1:, :5])[0, -1])


def test_copy_slot_shares_a_prompt(pair: Any) -> None:
    hf, lean = pair
    prompt = _ids(lean.vocab_size, 6)
    lean.prefill(0, prompt)
    lean.copy_slot(0, 3, 6)
    out = lean.decode(torch.tensor([0, 3]), torch.tensor([5, 7]), torch.tensor([6, 6]))
    for row, token in enumerate((5, 7)):
        reference = _reference(hf, torch.cat([prompt, torch.tensor([token])])[None])
        _close(out[row], reference[0, -1])


def test_greedy_continuation_equals_transformers_generate(
    pairs: dict[str, tuple[Any, LeanGPT2]],
) -> None:
    hf, lean = pairs["tiny"]
    lean.allocate(1, 64)
    tokenizer = LeanTokenizer(TINY)
    prompt = tokenizer("def read_config(path):")["input_ids"]
    with torch.inference_mode():
        expected = hf.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=20,
            min_new_tokens=20,
            do_sample=False,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            pad_token_id=0,
        )[0, len(prompt) :].tolist()
    tokens = [int(lean.prefill(0, torch.tensor(prompt)).argmax())]
    while len(tokens) < 20:
        position = torch.tensor([len(prompt) + len(tokens) - 1])
        tokens.append(
            int(lean.decode(torch.tensor([0]), torch.tensor(tokens[-1:]), position).argmax())
        )
    assert tokens == expected


@pytest.mark.parametrize(
    "flags",
    [
        {
            "activation_function": "gelu",
            "n_inner": 100,
            "layer_norm_epsilon": 1e-3,
            "scale_attn_by_inverse_layer_idx": True,
            "tie_word_embeddings": False,
        },
        {
            "activation_function": "gelu_pytorch_tanh",
            "scale_attn_weights": False,
            "reorder_and_upcast_attn": True,
        },
    ],
)
def test_flags_and_shapes_match_transformers(tmp_path: Path, flags: dict[str, Any]) -> None:
    shape = {"n_layer": 3, "n_embd": 64, "n_head": 4, "n_positions": 32, "vocab_size": 300}
    directory = _save_random(tmp_path, **shape, **flags)
    lean = LeanGPT2.from_pretrained(directory, device=CPU, dtype=torch.float32)
    assert lean.context_length == 32 and lean.vocab_size == 300
    ids = _ids(300, 2, 10)
    # The eager attention is the reference for these flags: transformers 4.x's SDPA path ignored
    # scale_attn_by_inverse_layer_idx and scale_attn_weights (5.x honours them).
    reference = _reference(_hf(directory, attn="eager"), ids)
    _close(lean.forward(ids), reference)
    lean.allocate(2, 16)
    lean.prefill_many([0, 1], [ids[0, :9], ids[1, :4]])
    out = lean.decode(
        torch.tensor([1, 0]), torch.tensor([int(ids[1, 4]), int(ids[0, 9])]), torch.tensor([4, 9])
    )
    _close(out, torch.stack([reference[1, 4], reference[0, 9]]))


def test_sharded_and_unprefixed_weights_load(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = {
        k.removeprefix("transformer."): v for k, v in load_file(TINY / "model.safetensors").items()
    }
    names = sorted(tensors)
    shards = {"a.safetensors": names[: len(names) // 2], "b.safetensors": names[len(names) // 2 :]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, tmp_path / shard)
    index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(TINY / name, tmp_path / name)
    check_checkpoint(tmp_path)
    ids = _ids(4096, 1, 8)
    sharded = LeanGPT2.from_pretrained(tmp_path, device=CPU, dtype=torch.float32)
    original = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=torch.float32)
    assert torch.equal(sharded.forward(ids), original.forward(ids))


@pytest.mark.parametrize(
    "change",
    [
        {"model_type": "llama"},
        {"activation_function": "relu"},
        {"add_cross_attention": True},
        {"n_embd": 250},
    ],
)
def test_unsupported_checkpoints_are_refused(tmp_path: Path, change: dict[str, Any]) -> None:
    config = json.loads((TINY / "config.json").read_text()) | change
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(TINY / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(UnsupportedCheckpointError) as info:
        LeanGPT2.from_pretrained(tmp_path, device=CPU, dtype=torch.float32)
    assert isinstance(info.value, BackendUnavailableError)
    with pytest.raises(UnsupportedCheckpointError):
        check_checkpoint(tmp_path)


def test_no_safetensors_is_refused(tmp_path: Path) -> None:
    shutil.copy(TINY / "config.json", tmp_path / "config.json")
    with pytest.raises(UnsupportedCheckpointError, match="safetensors"):
        LeanGPT2.from_pretrained(tmp_path, device=CPU, dtype=torch.float32)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_dtypes_keep_float32_logits(
    pairs: dict[str, tuple[Any, LeanGPT2]], dtype: str
) -> None:
    reference = pairs["tiny"][1]
    lean = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=getattr(torch, dtype))
    assert lean.wte.dtype == getattr(torch, dtype)
    lean.allocate(2, 32)
    ids = _ids(4096, 9)
    logits = lean.prefill(1, ids)
    assert logits.dtype == torch.float32 and logits.shape == (4096,)
    _close(logits, reference.forward(ids[None])[0, -1], 0.25)
    step = lean.decode(torch.tensor([1]), torch.tensor([3]), torch.tensor([9]))
    assert step.dtype == torch.float32 and torch.isfinite(step).all()


def test_bucket() -> None:
    assert [bucket(n) for n in (1, 2, 3, 5, 16, 17)] == [1, 2, 4, 8, 16, 32]
    assert bucket(10, limit=512, floor=64) == 64 and bucket(300, 512, 64) == 512
    assert bucket(600, 512, 64) == 512


def test_bucketed_decode_pads_into_the_scratch_slot() -> None:
    """The CUDA-graph runner's padding and buckets, run eagerly on the CPU."""
    plain = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=torch.float32)
    padded = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=torch.float32)
    plain.allocate(5, 128)
    padded.allocate(5, 128, graphs=True)
    prompts = [_ids(4096, n, seed=n) for n in (4, 70, 6)]
    for model in (plain, padded):
        model.prefill_many([0, 2, 4], prompts)
    slots, tokens, positions = (
        torch.tensor([0, 2, 4]),
        torch.tensor([1, 2, 3]),
        torch.tensor([4, 70, 6]),
    )
    _close(padded.decode(slots, tokens, positions), plain.decode(slots, tokens, positions), 1e-5)
    assert padded._graphs.buckets == [(4, 128)]
    # The padding row wrote only to the scratch slot (index 5); slots 1 and 3 stay empty.
    assert not padded.k_cache[:, [1, 3]].any() and padded.k_cache[:, 5, :, 0].any()
    out = padded.decode(slots[:1], tokens[:1], torch.tensor([5]))
    _close(out, plain.decode(slots[:1], tokens[:1], torch.tensor([5])), 1e-5)
    assert padded._graphs.buckets == [(1, 64), (4, 128)]
    padded.warm_up(max_batch=3)  # every bucket, with all rows on the scratch slot
    assert padded._graphs.buckets == [(b, s) for b in (1, 2, 4) for s in (64, 128)]
    _close(padded.decode(slots, tokens, positions + 1), plain.decode(slots, tokens, positions + 1))


def test_failed_capture_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    from muse_sdk.providers.local._gpt2_graphs import GraphRunner

    def broken(*args: Any) -> Any:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(GraphRunner, "_capture_graph", broken)
    plain = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=torch.float32)
    lean = LeanGPT2.from_pretrained(TINY, device=CPU, dtype=torch.float32)
    plain.allocate(2, 32)
    lean.allocate(2, 32, graphs=True)
    for model in (plain, lean):
        model.prefill(1, _ids(4096, 5))
    lean._graphs._capture = True  # as on CUDA, where _capture_graph now fails
    args = torch.tensor([1]), torch.tensor([9]), torch.tensor([5])
    _close(lean.decode(*args), plain.decode(*args), 1e-5)
    assert lean._graphs is None


def test_model_attributes_satisfy_the_loader(pairs: dict[str, tuple[Any, LeanGPT2]]) -> None:
    from muse_sdk.providers.local._loading import _wrap

    lean = pairs["tiny"][1]
    lean.allocate(3)
    assert (lean.slots, lean.length, lean.context_length) == (3, 512, 512)
    assert lean.k_cache.shape == (4, 4, 4, 512, 64) and lean.device == CPU
    loaded = _wrap(lean, LeanTokenizer(TINY))
    assert (loaded.context_length, loaded.eos_ids, loaded.pad_id) == (512, frozenset({0}), 0)
    assert loaded.repetition_penalty == 1.3


TEXTS = [
    "def read_config(path):\n    return open(path).read()",
    "写一首关于秋天的诗",
    "emoji 🙂👍🏽 and  spaces\t\ttabs",
    "ends with <|endoftext|> special",
    "",
]


def test_tokenizer_matches_transformers() -> None:
    lean, hf = LeanTokenizer(TINY), transformers.AutoTokenizer.from_pretrained(TINY)
    for text in TEXTS:
        ids = hf(text)["input_ids"]
        assert lean(text)["input_ids"] == ids == lean.encode(text)
        assert lean.decode(ids, skip_special_tokens=True) == hf.decode(
            ids, skip_special_tokens=True
        )
        assert lean.decode(ids) == hf.decode(ids)
    assert (lean.eos_token_id, lean.pad_token_id, lean.bos_token_id) == (
        hf.eos_token_id,
        hf.pad_token_id,
        hf.bos_token_id,
    )
    assert lean.all_special_ids == hf.all_special_ids and len(lean) == len(hf)
    assert lean.model_max_length == hf.model_max_length and lean.chat_template is None
    assert lean.convert_ids_to_tokens([0, 5, 300]) == hf.convert_ids_to_tokens([0, 5, 300])
    assert {i: t.content for i, t in lean.added_tokens_decoder.items()} == {
        i: t.content for i, t in hf.added_tokens_decoder.items()
    }
    assert TokenText(lean)._table == TokenText(hf)._table  # the byte-level streaming path


@pytest.mark.parametrize(
    "change",
    [
        {"add_prefix_space": True, "add_bos_token": True},
        {
            "pad_token": "<|endoftext|>",
            "chat_template": "{% for m in messages %}{{ m.role }}: "
            "{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}",
        },
    ],
)
def test_tokenizer_config_options_match_transformers(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    shutil.copy(TINY / "tokenizer.json", tmp_path / "tokenizer.json")
    config = json.loads((TINY / "tokenizer_config.json").read_text()) | change
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    lean, hf = LeanTokenizer(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert [lean(t)["input_ids"] for t in TEXTS] == [hf(t)["input_ids"] for t in TEXTS]
    assert (lean.pad_token_id, lean.chat_template) == (hf.pad_token_id, hf.chat_template)
    if lean.chat_template:
        messages = [{"role": "user", "content": "hi"}]
        rendered = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert lean.apply_chat_template(messages, add_generation_prompt=True) == rendered


def test_tokenizer_needs_tokenizer_json(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCheckpointError, match=r"tokenizer\.json"):
        LeanTokenizer(tmp_path)


def test_loading_imports_neither_transformers_nor_dynamo() -> None:
    script = f"""
import sys, torch
from muse_sdk.providers.local._gpt2 import LeanGPT2
from muse_sdk.providers.local._lean_tokenizer import LeanTokenizer
model = LeanGPT2.from_pretrained({str(TINY)!r}, device=torch.device("cpu"), dtype=torch.float32)
tokenizer = LeanTokenizer({str(TINY)!r})
model.allocate(2, 32)
model.prefill(0, torch.tensor(tokenizer("Once upon a time")["input_ids"]))
model.decode(torch.tensor([0]), torch.tensor([1]), torch.tensor([4]))
print(sorted(m for m in sys.modules if m.startswith(("transformers", "torch._dynamo"))))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
