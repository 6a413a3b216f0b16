"""``import muse_sdk`` is light: no torch, transformers or openai until a provider needs them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import muse_sdk as muse

HEAVY = ("torch", "transformers", "openai")


def _modules_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_is_light() -> None:
    assert _modules_after("import muse_sdk") == []


def test_loading_config_and_fake_provider_stays_light() -> None:
    code = (
        "import muse_sdk as muse\n"
        "muse.load('fake:echo').generate('hi')\n"
        "muse.Profile.from_table({'provider': 'openai', 'model': 'gpt-4o-mini', 'api_key': 'k'})\n"
        "muse.Profile.from_table({'provider': 'local', 'model': 'muse-tiny'})\n"
    )
    assert _modules_after(code) == []


def test_public_names_resolve() -> None:
    for name in muse.__all__:
        assert getattr(muse, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        muse.nope  # noqa: B018


def test_error_tree() -> None:
    assert issubclass(muse.UnknownProviderError, muse.ConfigError)
    assert issubclass(muse.MissingVariableError, muse.TemplateError)
    assert issubclass(muse.TemplateError, muse.InputError)
    assert issubclass(muse.RateLimitError, muse.ProviderError)
    assert issubclass(muse.TimeoutError, TimeoutError)
    assert issubclass(muse.ConnectionError, ConnectionError)
    assert muse.RateLimitError("x").retryable and not muse.AuthenticationError("x").retryable
    assert muse.RateLimitError("x").status_code == 429
    for name in muse.__all__:
        obj = getattr(muse, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, muse.MuseError), name
            assert obj.__doc__, name
