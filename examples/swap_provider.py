"""Swap providers without touching code: the same function, two profiles from one muse.toml.

Runs offline: both profiles use the fake provider. Point "writer" at `provider = "openai"` or
`provider = "local"` and `tell_story` does not change.
"""

import tempfile
from pathlib import Path

import muse_sdk as muse

CONFIG = """
default = "draft"

[profiles.draft]            # fast and offline: echoes the prompt
provider = "fake"
model = "echo"
max_tokens = 6

[profiles.writer]           # e.g. provider = "openai", model = "gpt-3.5-turbo-instruct"
provider = "fake"
model = "script"
responses = ["there lived a dragon who wrote poems about autumn."]
temperature = 0.7
"""


def tell_story(gen: muse.Generator, opening: str) -> str:
    """The application code: it never names a provider."""
    return f"{opening} {gen.generate(opening).text}"


with tempfile.TemporaryDirectory() as folder:
    config = Path(folder) / "muse.toml"
    config.write_text(CONFIG, encoding="utf-8")
    for profile in ("draft", "writer"):
        with muse.load(profile=profile, config=config) as gen:
            print(f"[{profile}: {gen.provider}:{gen.model}] {tell_story(gen, 'Once upon a time')}")

# The same swap without a file: a mapping in the same shape as muse.toml.
gen = muse.load(
    profile="writer", config={"profiles": {"writer": {"provider": "fake", "model": "echo"}}}
)
print("[mapping]", tell_story(gen, "In a land far away"))
