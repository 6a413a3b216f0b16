"""Quick start: one Generator, three ways to call it (runs offline on the fake provider)."""

import asyncio

import muse_sdk as muse

gen = muse.load("fake:echo")

result = gen.generate("Once upon a time there was a dragon", max_tokens=5)
print(f"{result.text!r} finish={result.finish_reason} tokens={result.usage.completion_tokens}")

for chunk in gen.stream("写一首关于秋天的诗", max_tokens=8):
    print(chunk.text, end="", flush=True)
print()

batch = gen.batch(["a story", "", "an ad"], max_tokens=2)
print(batch.summary())
for index, error in batch.errors.items():
    print(f"item {index} failed: {error}")


async def main() -> None:
    results = await gen.abatch([f"prompt number {i}" for i in range(5)], max_concurrency=2)
    print(results.texts)


asyncio.run(main())
