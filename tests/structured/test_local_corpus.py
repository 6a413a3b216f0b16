"""The structured-output targets on the local provider, over the whole schema corpus.

muse-tiny at temperature 1.0, 20 seeded rows per schema (one ``n=20`` call each, all calls
concurrent on the engine), ``max_tokens`` with room to spare: every reply that ends with
``"stop"`` validates, at least 99% end with ``"stop"``, no whitespace run is longer than 20
characters; compiling a schema takes 50 ms at the 95th percentile.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("llguidance")

import muse_sdk as muse  # noqa: E402
from muse_sdk.core.types import GenerationResult  # noqa: E402
from muse_sdk.providers.local import LocalGenerator  # noqa: E402
from muse_sdk.providers.local._constraint import Compiler  # noqa: E402
from muse_sdk.structured import OutputSpec  # noqa: E402
from tests.structured.corpus import LARGE, PATHOLOGICAL, SCHEMAS  # noqa: E402

ROWS = 20
MAX_TOKENS = 256


@pytest.fixture(scope="module")
def gen() -> Iterator[LocalGenerator]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    g = muse.load("local:muse-tiny", device="cpu")
    assert isinstance(g, LocalGenerator)
    yield g
    g.close()
    torch.set_num_threads(before)


def test_compile_time_p95_is_under_50_ms(gen: LocalGenerator) -> None:
    loaded = gen._model()
    compiler = Compiler(loaded.tokenizer, loaded.model.vocab_size, sorted(loaded.eos_ids))
    times = []
    for _, schema in [*SCHEMAS, *LARGE]:
        spec = OutputSpec.for_schema(schema)
        start = time.perf_counter()
        compiler.compile(spec)
        times.append((time.perf_counter() - start) * 1e3)
    assert statistics.quantiles(times, n=20)[-1] <= 50.0, sorted(times)[-5:]
    start = time.perf_counter()
    compiler.compile(OutputSpec.for_schema(PATHOLOGICAL))  # compiles: it is lazy
    assert time.perf_counter() - start < 2.0


async def _replies(gen: LocalGenerator) -> list[tuple[str, GenerationResult]]:
    async def one(schema: dict[str, object]) -> GenerationResult:
        # The raw replies: the targets concern what the decoder wrote, before any parsing.
        request = gen.make_request(
            "data = ",
            {"schema": schema, "n": ROWS, "max_tokens": MAX_TOKENS, "temperature": 1.0, "seed": 7},
        )
        return await gen._agenerate(request)

    results = await asyncio.gather(*(one(schema) for _, schema in SCHEMAS))
    return [(sid, result) for (sid, _), result in zip(SCHEMAS, results, strict=True)]


def test_every_stopped_reply_validates_and_almost_all_stop(gen: LocalGenerator) -> None:
    assert len(SCHEMAS) >= 50
    replies = asyncio.run(_replies(gen))
    stopped = total = 0
    invalid: list[str] = []
    longest_space = 0
    for sid, result in replies:
        spec = OutputSpec.for_schema(dict(SCHEMAS)[sid])
        for choice in result.choices:
            total += 1
            runs = [len(run) for run in re.findall(r"\s+", choice.text)]
            longest_space = max([longest_space, *runs])
            if choice.finish_reason != "stop":
                continue
            stopped += 1
            try:
                spec.parse(choice.text, choice.finish_reason)
            except Exception as exc:
                invalid.append(f"{sid}: {exc}")
    assert total == ROWS * len(SCHEMAS)
    assert not invalid, invalid[:5]
    assert stopped >= 0.99 * total, f"{stopped}/{total} ended with 'stop'"
    assert longest_space <= 20
