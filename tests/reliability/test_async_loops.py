"""The event loop is never blocked by a lazy import, and a generator outlives its event loops.

Issue 13, points 13 and 14. Each runs in a fresh interpreter: in this one, openai is already
imported and the garbage collector's timing is not the script's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.reliability.fault_server import FaultServer, Schedule, reply_for

Start = Callable[..., FaultServer]
ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


FIRST_AGENERATE = """
    import asyncio, sys, time
    import muse_sdk as muse

    gen = muse.load("openai:m", base_url=sys.argv[1], api_key="none", api="completions")
    assert "openai" in sys.modules, "muse.load() imports the client library, not the first call"

    async def main():
        start = time.monotonic()
        try:
            await asyncio.wait_for(gen.agenerate("slow", timeout=5), 0.3)
        except asyncio.TimeoutError:
            pass
        print(f"{time.monotonic() - start:.3f}")

    asyncio.run(main())
"""


def test_first_agenerate_does_not_block_the_event_loop(fault_server: Start) -> None:
    server = fault_server(Schedule(scripted=["stall"] * 3), stall_s=3)
    run = _run(FIRST_AGENERATE, server.base_url)
    assert run.returncode == 0, run.stderr
    elapsed = float(run.stdout)
    # Before: the first call imported openai on the loop, and wait_for(0.3) returned after 0.75 s.
    assert elapsed < 0.3 + 0.25, elapsed


TWO_LOOPS = """
    import asyncio, gc, sys
    import muse_sdk as muse

    gen = muse.load("openai:m", base_url=sys.argv[1], api_key="none", api=sys.argv[2])

    async def twice(prompt):
        text = (await gen.agenerate(prompt)).text
        chunks = [c.text async for c in gen.astream(prompt)]
        gc.collect()  # the first loop's client is dropped while this loop runs
        await asyncio.sleep(0.05)
        return text, "".join(chunks)

    print(asyncio.run(twice("one")))
    print(asyncio.run(twice("two")))
    print(asyncio.run(twice("three")))

    async def close():
        await gen.aclose()

    asyncio.run(close())
    del gen
    gc.collect()
"""


def test_one_generator_from_several_asyncio_runs_is_clean(fault_server: Start) -> None:
    server = fault_server()
    for api in ("completions", "chat"):
        run = _run(TWO_LOOPS, server.base_url, api)
        assert run.returncode == 0, run.stderr
        for prompt in ("one", "two", "three"):
            assert str((reply_for(prompt), reply_for(prompt))) in run.stdout
        assert "Event loop is closed" not in run.stderr, run.stderr
        assert "never retrieved" not in run.stderr, run.stderr
        assert run.stderr.strip() == "", run.stderr
