"""The provider registry: built-ins, unknown names, and third-party plugins via entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import muse_sdk as muse
from muse_sdk import registry


def test_builtin_providers_listed() -> None:
    assert {"fake", "openai", "local"} <= set(muse.provider_names())


@pytest.mark.parametrize(
    ("typo", "suggestion"), [("opnai", "openai"), ("locl", "local"), ("fak", "fake")]
)
def test_unknown_provider_suggests_close_match(typo: str, suggestion: str) -> None:
    with pytest.raises(muse.UnknownProviderError) as info:
        muse.load(f"{typo}:some-model")
    message = str(info.value)
    assert f"did you mean {suggestion!r}" in message
    assert "openai" in message and "local" in message and "fake" in message
    assert "'provider:model'" in message
    assert isinstance(info.value, muse.ConfigError)


def test_unknown_provider_without_close_match() -> None:
    with pytest.raises(muse.UnknownProviderError) as info:
        muse.load("zzzzzz:m")
    assert "did you mean" not in str(info.value)


PLUGIN = '''
"""A third-party provider, as a plugin author would write it."""
from muse_sdk.core import Choice, GenerationResult, Generator, ProviderSettings


class ShoutSettings(ProviderSettings):
    suffix: str = "!"


class ShoutGenerator(Generator):
    provider = "shout"
    Settings = ShoutSettings

    def _generate(self, request):
        text = str(request.prompt).upper() + self.settings.suffix
        return GenerationResult(choices=(Choice(text=text, finish_reason="stop"),),
                                provider=self.provider, model=self.model)


class NotAGenerator:
    pass
'''


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Install a real distribution with an entry point into a directory on sys.path."""
    site = tmp_path / "site"
    (site / "muse_shout").mkdir(parents=True)
    (site / "muse_shout" / "__init__.py").write_text(PLUGIN, encoding="utf-8")
    dist = site / "muse_shout-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: muse-shout\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [muse_sdk.providers]
            shout = muse_shout:ShoutGenerator
            broken = muse_shout:NotAGenerator
            missing = muse_shout_missing:Gen
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("muse_shout", None)


def test_entry_point_provider(plugin_package: Path) -> None:
    assert "shout" in muse.provider_names()
    gen = muse.load("shout:any", suffix="!!")
    assert gen.generate("hello").text == "HELLO!!"
    with pytest.raises(muse.InvalidConfigError, match=r"unknown key 'sufix'.*mean 'suffix'"):
        muse.load("shout:any", sufix="?")


def test_plugin_without_stream_says_so(plugin_package: Path) -> None:
    gen = muse.load("shout:any")
    with pytest.raises(muse.UnsupportedParameterError, match="cannot stream"):
        list(gen.stream("x"))


def test_broken_entry_points(plugin_package: Path) -> None:
    with pytest.raises(muse.BackendUnavailableError, match="not a muse_sdk Generator"):
        muse.load("broken:x")
    with pytest.raises(muse.BackendUnavailableError, match="cannot be imported"):
        muse.load("missing:x")


def test_register_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from muse_sdk.providers.fake import FakeGenerator

    monkeypatch.setattr(registry, "_registered", {})
    muse.register("mine", FakeGenerator)
    assert muse.load("mine:echo").generate("x").text == "x"
