"""Fan one request out to several prompts at once with asyncio (offline, on the fake provider).

`agenerate` runs calls concurrently; `abatch` does the same with bounded concurrency, keeps the
input order and never loses a result when one prompt fails.
"""

import asyncio
import time

import muse_sdk as muse

TOPICS = ["秋天", "the sea", "a lighthouse", "一只猫"]


async def main() -> None:
    # latency_s makes each fake call take 0.2 s, to show that the calls overlap.
    gen = muse.load("fake:script", responses=["a short poem"], latency_s=0.2)

    start = time.perf_counter()
    results = await asyncio.gather(*(gen.agenerate(f"写一首关于{t}的诗") for t in TOPICS))
    took = time.perf_counter() - start
    print(f"gather: {len(results)} poems in {took:.2f}s (one call takes 0.2s)")

    batch = await gen.abatch([f"A poem about {t}" for t in TOPICS], max_concurrency=2)
    print(f"abatch: {batch.summary()}")
    for topic, text in zip(TOPICS, batch.texts, strict=True):
        print(f"  {topic}: {text}")

    async for chunk in muse.load("fake:echo").astream("streamed word by word", max_tokens=4):
        print(chunk.text, end="", flush=True)
    print()


asyncio.run(main())
