"""``muse.load("openai:...")`` + the first request vs the official client's, fresh interpreters.

Each sample is a new ``python -c`` process against the loopback server (chat endpoint):

- ``cold``: from before the first import to the first reply (``import muse_sdk``, ``load``,
  ``generate`` vs ``import openai``, ``OpenAI(...)``, ``create``);
- ``openai imported``: both processes import ``openai`` before the clock starts, leaving
  construction + first request; recorded as context (no target): it isolates muse_sdk's own
  import and set-up cost, which a fresh interpreter pays once.

Target (``cold``, what a user's script sees): <= 1.2x the official client.
"""

from __future__ import annotations

from functools import partial

from benchmarks._harness import CHAT_MODEL, PROMPT, Context, Result, Row, Target, interleave
from benchmarks._harness import python_s as child_s

NAME = "first_request"
CLOCK = "import time; t = time.perf_counter()\n"
MUSE = """import muse_sdk as muse
gen = muse.load("openai:{model}", base_url="{url}", api_key="bench")
gen.generate("{prompt}", max_tokens=5)
"""
OPENAI = """import openai
client = openai.OpenAI(api_key="bench", base_url="{url}")
client.chat.completions.create(
    model="{model}", messages=[{{"role": "user", "content": "{prompt}"}}], max_tokens=5
)
"""
DONE = "print(time.perf_counter() - t)\n"
VARIANTS = {"cold": ("", Target("<=", 1.2)), "openai imported": ("import openai\n", None)}


def _code(body: str, url: str, pre: str) -> str:
    return pre + CLOCK + body.format(url=url, model=CHAT_MODEL, prompt=PROMPT) + DONE


def _ms(code: str) -> float:
    return child_s(code) * 1e3


def run(ctx: Context) -> list[Result]:
    results: list[Result] = []
    for variant, (pre, target) in VARIANTS.items():
        codes = {"muse_sdk": _code(MUSE, ctx.url, pre), "openai": _code(OPENAI, ctx.url, pre)}
        for code in codes.values():
            _ms(code)  # warm up: bytecode caches, the OS file cache
        samples = interleave({name: partial(_ms, code) for name, code in codes.items()}, ctx.runs)
        muse, raw = samples["muse_sdk"], samples["openai"]
        row = Row(NAME, "muse_sdk", "openai", "chat", "ms", muse, raw, target, variant)
        results.append(row)
    return results
