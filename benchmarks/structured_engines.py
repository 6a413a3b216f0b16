"""Which constrained-decoding engine for the local provider? (issue 16; docs/structured-engines.md)

Compares llguidance, xgrammar, outlines-core and lm-format-enforcer on one tokenizer, offline
(every tokenizer is built from ``tokenizer.json``; nothing is downloaded):

- setup: building the engine's tokenizer data, once per model;
- compile: milliseconds per JSON schema (median of 5, no cache), over 12 schemas from a 3-field
  object to 30 required properties, ``$ref``, recursion, formats and patterns;
- per token: microseconds of engine time (mask + advance) per token, walking each grammar with
  random legal tokens (5 walks of up to 200 tokens per schema); the walk's own numpy work is not
  counted;
- pathological schemas: each compiled in a child process, killed after 10 s.

The peers are not muse_sdk dependencies; install them in a separate venv::

    pip install llguidance outlines-core xgrammar lm-format-enforcer
    python -m benchmarks.structured_engines                       # muse-tiny's 4,096 tokens
    python -m benchmarks.structured_engines --tokenizer big.json  # e.g. a 50k-token BPE
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

TINY = Path(__file__).resolve().parent.parent / "muse_sdk/models/muse-tiny/tokenizer.json"
EOS = 0


def _props(n: int) -> dict[str, Any]:
    kinds: list[dict[str, Any]] = [
        {"type": "string", "maxLength": 20},
        {"type": "integer", "minimum": 0, "maximum": 1000},
        {"type": "boolean"},
        {"type": "number"},
        {"enum": ["red", "green", "blue"]},
        {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    ]
    names = [f"field_{i}" for i in range(n)]
    properties = {name: kinds[i % len(kinds)] for i, name in enumerate(names)}
    return {"type": "object", "properties": properties, "required": names}


def _obj(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


_POINT = _obj({"x": {"type": "number"}, "y": {"type": "number"}}, "x", "y")
_NODE = _obj(
    {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "v"
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "flat-3": _obj(
        {"name": {"type": "string"}, "age": {"type": "integer"}, "ok": {"type": "boolean"}},
        "name",
        "age",
        "ok",
    ),
    "enum": {"enum": ["yes", "no", "maybe"]},
    "array-int": {
        "type": "array",
        "items": {"type": "integer", "minimum": -5, "maximum": 500},
        "minItems": 1,
        "maxItems": 8,
    },
    "formats": _obj(
        {
            "when": {"type": "string", "format": "date-time"},
            "email": {"type": "string", "format": "email"},
            "id": {"type": "string", "format": "uuid"},
        },
        "when",
        "email",
        "id",
    ),
    "pattern": _obj(
        {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
            "name": {"type": "string", "minLength": 2, "maxLength": 12},
        },
        "code",
        "name",
    ),
    "anyof": _obj(
        {
            "value": {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}},
        },
        "value",
    ),
    "refs": {
        "$defs": {"point": _POINT},
        **_obj(
            {
                "start": {"$ref": "#/$defs/point"},
                "end": {"$ref": "#/$defs/point"},
                "path": {"type": "array", "items": {"$ref": "#/$defs/point"}, "maxItems": 4},
            },
            "start",
            "end",
        ),
    },
    "nested": _obj(
        {
            "user": _obj(
                {
                    "name": {"type": "string"},
                    "address": _obj(
                        {
                            "city": {"type": "string"},
                            "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                        },
                        "city",
                        "zip",
                    ),
                },
                "name",
                "address",
            ),
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "user",
        "score",
    ),
    "optional-10": {
        "type": "object",
        "properties": {f"o{i}": {"type": "integer"} for i in range(10)},
    },
    "props-15": _props(15),
    "props-30": _props(30),
    "recursive": {"$defs": {"node": _NODE}, "$ref": "#/$defs/node"},
}
PATHOLOGICAL: dict[str, dict[str, Any]] = {
    "long-minLength": {"type": "string", "minLength": 5000, "maxLength": 10000},
    "anyof-40x8-patterns": {
        "anyOf": [
            _obj(
                {
                    f"k{i}_{j}": {"type": "string", "pattern": f"^[a-z]{{{i},{i + j + 3}}}$"}
                    for j in range(8)
                },
                *[f"k{i}_{j}" for j in range(8)],
            )
            for i in range(40)
        ]
    },
    "huge-repeat": {"type": "string", "pattern": "^(a|b|ab|ba)*c{300}(x|y){50,200}$"},
}


def _bits(mask: Any, vocab: int) -> Any:
    return np.flatnonzero(np.unpackbits(np.asarray(mask).view(np.uint8), bitorder="little")[:vocab])


class Engine:
    """One engine: ``setup`` (tokenizer data), ``compile`` (a schema), ``walk`` (a random walk)."""

    name = ""

    def __init__(self, tokenizer: str) -> None:
        self.tokenizer = tokenizer

    def hf(self) -> Any:
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_file=self.tokenizer, eos_token="<|endoftext|>")


class LLGuidance(Engine):
    name = "llguidance"

    def setup(self) -> None:
        import llguidance as llg

        self.llg = llg
        self.tok = llg.LLTokenizer(Path(self.tokenizer).read_text(), eos_token=EOS)
        self.n = self.tok.vocab_size

    def compile(self, schema: dict[str, Any]) -> Any:
        options = {"whitespace_flexible": False}
        grammar = self.llg.LLMatcher.grammar_from_json_schema(schema, defaults=options)
        matcher = self.llg.LLMatcher(self.tok, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(matcher.get_error())
        return matcher

    def walk(self, compiled: Any, rng: Any, steps: int) -> tuple[int, float]:
        m = compiled.deep_copy()
        mask = np.full((self.n + 31) // 32, -1, dtype=np.int32)
        count, spent = 0, 0.0
        for _ in range(steps):
            start = time.perf_counter()
            m.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
            spent += time.perf_counter() - start
            allowed = _bits(mask, self.n)
            if len(allowed) == 0 or m.is_stopped():
                break
            token = int(rng.choice(allowed))
            if token == EOS:
                break
            start = time.perf_counter()
            ok = m.consume_token(token)
            spent += time.perf_counter() - start
            assert ok
            count += 1
        return count, spent


class XGrammar(Engine):
    name = "xgrammar"

    def setup(self) -> None:
        import xgrammar as xgr

        self.xgr = xgr
        self.info = xgr.TokenizerInfo.from_huggingface(self.hf(), stop_token_ids=[EOS])
        self.n = self.info.vocab_size

    def compile(self, schema: dict[str, Any]) -> Any:
        compiler = self.xgr.GrammarCompiler(self.info, max_threads=1, cache_enabled=False)
        return compiler.compile_json_schema(schema, any_whitespace=False, separators=(",", ":"))

    def walk(self, compiled: Any, rng: Any, steps: int) -> tuple[int, float]:
        m = self.xgr.GrammarMatcher(compiled)
        mask = self.xgr.allocate_token_bitmask(1, self.n)
        count, spent = 0, 0.0
        for _ in range(steps):
            start = time.perf_counter()
            m.fill_next_token_bitmask(mask, 0)
            spent += time.perf_counter() - start
            allowed = _bits(mask.numpy(), self.n)
            if len(allowed) == 0 or m.is_terminated():
                break
            token = int(rng.choice(allowed))
            if token == EOS:
                break
            start = time.perf_counter()
            ok = m.accept_token(token)
            spent += time.perf_counter() - start
            assert ok
            count += 1
        return count, spent


class OutlinesCore(Engine):
    name = "outlines-core"

    def setup(self) -> None:
        import outlines_core
        from tokenizers import Tokenizer

        from muse_sdk.providers.local._decode import _byte_decoder

        self.oc = outlines_core
        tok = Tokenizer.from_file(self.tokenizer)
        self.n = tok.get_vocab_size()
        alphabet = _byte_decoder()
        vocab: dict[bytes, list[int]] = {}
        for text, token in tok.get_vocab().items():
            if token != EOS:
                raw = (
                    bytes(alphabet[c] for c in text)
                    if all(c in alphabet for c in text)
                    else text.encode()
                )
                vocab.setdefault(raw, []).append(token)
        self.vocab = outlines_core.Vocabulary(EOS, vocab)

    def compile(self, schema: dict[str, Any]) -> Any:
        regex = self.oc.json_schema.build_regex_from_schema(json.dumps(schema), "")
        return self.oc.Index(regex, self.vocab)

    def walk(self, compiled: Any, rng: Any, steps: int) -> tuple[int, float]:
        guide = self.oc.Guide(compiled)
        mask = np.zeros((self.n + 31) // 32, dtype=np.int32)
        count, spent = 0, 0.0
        for _ in range(steps):
            mask[:] = 0
            start = time.perf_counter()
            guide.write_mask_into(mask.ctypes.data, mask.size, 4)
            spent += time.perf_counter() - start
            allowed = _bits(mask, self.n)
            if len(allowed) == 0:
                break
            token = int(rng.choice(allowed))
            if token == EOS:
                break
            start = time.perf_counter()
            guide.advance(token, False)
            spent += time.perf_counter() - start
            count += 1
        return count, spent


class FormatEnforcer(Engine):
    name = "lm-format-enforcer"

    def setup(self) -> None:
        # Its transformers integration does not import under transformers 5: the two helpers it
        # would use, inlined.
        from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

        tok = self.hf()
        n = len(tok)
        zero = tok.encode("0")[-1]
        special = set(tok.all_special_ids)
        regular = []
        for token in range(n):
            if token not in special:
                after_zero = tok.decode([zero, token])[1:]
                regular.append((token, after_zero, len(after_zero) > len(tok.decode([token]))))

        def decode(ids: list[int]) -> str:
            return str(tok.decode(ids)).rstrip("\ufffd")

        self.data = TokenEnforcerTokenizerData(regular, decode, EOS, False, n)

    def compile(self, schema: dict[str, Any]) -> Any:
        from lmformatenforcer import JsonSchemaParser

        return JsonSchemaParser(schema)

    def walk(self, compiled: Any, rng: Any, steps: int) -> tuple[int, float]:
        from lmformatenforcer import TokenEnforcer

        enforcer = TokenEnforcer(self.data, compiled)
        sequence: list[int] = []
        count, spent = 0, 0.0
        for _ in range(steps):
            start = time.perf_counter()
            allowed = enforcer.get_allowed_tokens(sequence).allowed_tokens
            spent += time.perf_counter() - start
            if not allowed:
                break
            token = int(rng.choice(allowed))
            if token == EOS:
                break
            sequence.append(token)
            count += 1
        return count, spent


ENGINES: dict[str, type[Engine]] = {
    "llguidance": LLGuidance,
    "xgrammar": XGrammar,
    "outlines": OutlinesCore,
    "lmfe": FormatEnforcer,
}


def _pathological(kind: str, tokenizer: str, schema: dict[str, Any], queue: Any) -> None:
    engine: Any = ENGINES[kind](tokenizer)
    engine.setup()
    start = time.perf_counter()
    try:
        engine.compile(schema)
        queue.put(("compiled", time.perf_counter() - start))
    except Exception as exc:
        queue.put((f"error ({type(exc).__name__})", time.perf_counter() - start))


def measure(kind: str, tokenizer: str) -> dict[str, Any]:
    engine: Any = ENGINES[kind](tokenizer)
    start = time.perf_counter()
    engine.setup()
    row: dict[str, Any] = {"setup_ms": (time.perf_counter() - start) * 1e3, "compile_ms": {}}
    row |= {"us_per_token": {}, "failed": {}, "pathological": {}}
    for name, schema in SCHEMAS.items():
        try:
            times = []
            for _ in range(5):
                start = time.perf_counter()
                compiled = engine.compile(schema)
                times.append((time.perf_counter() - start) * 1e3)
            walks = [engine.walk(compiled, np.random.default_rng(seed), 200) for seed in range(5)]
        except Exception as exc:
            row["failed"][name] = f"{type(exc).__name__}: {str(exc)[:80]}"
            continue
        row["compile_ms"][name] = statistics.median(times)
        tokens = sum(count for count, _ in walks)
        if tokens:
            row["us_per_token"][name] = sum(spent for _, spent in walks) / tokens * 1e6
    for name, schema in PATHOLOGICAL.items():
        queue: Any = mp.Queue()
        child = mp.Process(target=_pathological, args=(kind, tokenizer, schema, queue))
        child.start()
        child.join(10)
        if child.is_alive():
            child.kill()
            row["pathological"][name] = "timeout > 10 s"
        else:
            status, seconds = queue.get()
            row["pathological"][name] = f"{status} in {seconds * 1e3:.0f} ms"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default=str(TINY), help="a tokenizer.json")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = {}
    print("| Engine | Setup | Compile p50 / max | Per token (median) | Pathological |")
    print("| --- | --- | --- | --- | --- |")
    for kind in args.engines.split(","):
        row = measure(kind, args.tokenizer)
        results[kind] = row
        compiles = list(row["compile_ms"].values())
        per_token = statistics.median(row["us_per_token"].values())
        print(
            f"| {ENGINES[kind].name} | {row['setup_ms']:.0f} ms | {statistics.median(compiles):.2f}"
            f" / {max(compiles):.1f} ms | {per_token:.0f} µs | {row['pathological']} |",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
