"""Hub models without network: the HF cache, a quick reachability probe, did-you-mean (issue 13).

The cache is a real Hugging Face cache layout built in a temp dir (``HF_HUB_CACHE``); the hub is
a loopback HTTP server, or a closed port for one that cannot be reached.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import muse_sdk as muse
from muse_sdk.errors import BackendUnavailableError, ConfigError, UnknownModelError
from muse_sdk.models import (
    HUB_MODELS,
    SHIPPED_MODELS,
    cached_hub_models,
    cached_snapshot,
    known_model_names,
    shipped_model_dir,
)
from muse_sdk.providers.local._hub import download_command, hub_reachable
from tests.servers.fake_hub import empty_hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HF cache; the hub is a closed port, so nothing here can reach the network."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return cache


def put_in_cache(cache: Path, repo_id: str, files: Path | None = None) -> Path:
    """Lay out ``repo_id`` as ``hf download`` would: refs/main -> snapshots/<commit>/..."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    if files is None:
        (snapshot / "config.json").write_text("{}")
    else:
        for file in files.iterdir():
            (snapshot / file.name).write_bytes(file.read_bytes())
    return snapshot


# --- the names muse knows --------------------------------------------------------------------


def test_known_names_without_a_cache(hf_cache: Path) -> None:
    assert not hf_cache.exists()
    assert cached_hub_models() == []
    assert known_model_names() == [*SHIPPED_MODELS, *HUB_MODELS]


def test_known_names_include_cached_models(hf_cache: Path) -> None:
    put_in_cache(hf_cache, "acme/coder-small")
    put_in_cache(hf_cache, "gpt2")  # already known: listed once
    (hf_cache / "datasets--acme--corpus" / "snapshots").mkdir(parents=True)
    (hf_cache / "models--acme--half-downloaded" / "snapshots" / COMMIT).mkdir(parents=True)
    (hf_cache / ".locks").mkdir()
    assert cached_hub_models() == ["acme/coder-small", "gpt2"]
    assert known_model_names() == [*SHIPPED_MODELS, *HUB_MODELS, "acme/coder-small"]


def test_cached_snapshot_follows_refs_and_commits(hf_cache: Path) -> None:
    snapshot = put_in_cache(hf_cache, "acme/coder-small")
    assert cached_snapshot("acme/coder-small") == snapshot
    assert cached_snapshot("acme/coder-small", COMMIT) == snapshot
    assert cached_snapshot("acme/coder-small", "v2") is None
    assert cached_snapshot("acme/other") is None


def test_listing_a_large_cache_is_fast_and_imports_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    for i in range(300):
        put_in_cache(cache, f"org{i}/model{i}")
    code = (
        "import sys, time; from muse_sdk.models import known_model_names;"
        "t = time.perf_counter(); names = known_model_names(); t = time.perf_counter() - t;"
        "assert len(names) == 306, len(names);"
        "assert not {'huggingface_hub', 'transformers', 'torch'} & set(sys.modules);"
        "print(t)"
    )
    env = {"HF_HUB_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 0.5


# --- a missing model fails at once, before torch -------------------------------------------------


def test_known_model_without_weights_says_how_to_get_them(hf_cache: Path) -> None:
    start = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        muse.load("local:gpt2", device="cpu")
    assert time.monotonic() - start < 3
    message = str(info.value)
    assert "\n" not in message
    assert "download gpt2 --include" in message and "local:/path/to/dir" in message
    assert "set HF_HUB_OFFLINE=1" in message  # not set: skipping the probe is worth saying


def test_offline_does_not_advise_setting_offline(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendUnavailableError) as info:
        muse.load("local:gpt2", device="cpu")
    assert "HF_HUB_OFFLINE is set" in str(info.value)
    assert "set HF_HUB_OFFLINE=1" not in str(info.value)


@pytest.mark.parametrize("offline", ["1", ""])
def test_typo_is_a_usage_error_with_did_you_mean(
    hf_cache: Path, monkeypatch: pytest.MonkeyPatch, offline: str
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    with pytest.raises(UnknownModelError) as info:
        muse.load("local:gtp2", device="cpu")
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.model == "gtp2" and err.suggestions == ["gpt2"]
    assert "did you mean 'local:gpt2'?" in str(err)
    assert "download gtp2" not in str(err)  # never advise downloading a model that may not exist
    assert "set HF_HUB_OFFLINE" not in str(err)


def test_did_you_mean_covers_cached_models(hf_cache: Path) -> None:
    put_in_cache(hf_cache, "acme/coder-small")
    with pytest.raises(UnknownModelError) as info:
        muse.load("local:acme/coder-smal", device="cpu")
    assert info.value.suggestions == ["acme/coder-small"]


def test_download_command_exists_here() -> None:
    command = download_command("gpt2").split()
    assert command[1:3] == ["download", "gpt2"]
    out = subprocess.run([command[0], "download", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--include" in out.stdout


def test_unprefixed_model_name_suggests_the_local_provider(hf_cache: Path) -> None:
    with pytest.raises(ConfigError, match="write 'local:gpt2'"):
        muse.load("gpt2")
    with pytest.raises(ConfigError, match=r"did you mean 'local:gpt2'\?"):
        muse.load("gtp2")


# --- a cached model loads without the network ----------------------------------------------------


def test_cached_model_loads_while_the_hub_is_unreachable(hf_cache: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    tiny = shipped_model_dir("muse-tiny")
    assert tiny is not None
    put_in_cache(hf_cache, "acme/muse-tiny-copy", tiny)
    assert "acme/muse-tiny-copy" in known_model_names()
    start = time.monotonic()
    with muse.load("local:acme/muse-tiny-copy", device="cpu") as gen:
        assert gen.generate("def", max_tokens=3).usage.completion_tokens == 3
    assert time.monotonic() - start < 30


# --- the probe -------------------------------------------------------------------------------


@pytest.fixture
def fake_hub() -> Iterator[str]:
    with empty_hub() as url:
        yield url


def test_probe_answers_quickly_either_way(fake_hub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub)
    assert hub_reachable() is True
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    start = time.monotonic()
    assert hub_reachable() is False
    assert time.monotonic() - start < 1.6
    monkeypatch.setenv("HF_ENDPOINT", "not a url")
    assert hub_reachable() is False
