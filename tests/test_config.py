"""Config: file, environment and keyword arguments, their precedence, and every config error."""

from __future__ import annotations

from pathlib import Path

import pytest

import muse_sdk as muse
from muse_sdk import registry
from muse_sdk.config import DEFAULT_MODEL, Config, config_path

CONFIG = """
default = "writer"

[profiles.writer]
provider = "fake"
model = "script"
responses = ["from writer"]
temperature = 0.7
max_tokens = 5
retry = { max_attempts = 5, max_wait_s = 20 }

[profiles.echo]
provider = "fake"
model = "echo"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "muse.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_file_default_profile(config_file: Path) -> None:
    gen = muse.load(config=config_file)
    assert (gen.provider, gen.model, gen.name) == ("fake", "script", "writer")
    assert gen.defaults.temperature == 0.7 and gen.defaults.max_tokens == 5
    assert gen.retry.settings.max_attempts == 5 and gen.retry.settings.max_wait_s == 20
    assert gen.generate("x").text == "from writer"


def test_muse_config_env_and_cwd_discovery(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MUSE_CONFIG", str(config_file))
    assert muse.load().name == "writer"
    monkeypatch.delenv("MUSE_CONFIG")
    monkeypatch.chdir(tmp_path)  # ./muse.toml
    assert config_path() == Path("muse.toml")
    assert muse.load().name == "writer"


def test_user_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user = tmp_path / "xdg"
    (user / "muse").mkdir(parents=True)
    (user / "muse" / "muse.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(user))
    assert muse.load().name == "writer"


def test_builtin_default_without_config() -> None:
    gen = muse.load()
    assert f"{gen.provider}:{gen.model}" == DEFAULT_MODEL


def test_precedence_env_over_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSE_PROFILE", "echo")
    assert muse.load(config=config_file).name == "echo"
    monkeypatch.setenv("MUSE_MODEL", "fake:echo")
    gen = muse.load(config=config_file)
    assert (gen.model, gen.name) == ("echo", "fake:echo")  # MUSE_MODEL beats MUSE_PROFILE


def test_precedence_arguments_over_env(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSE_MODEL", "fake:echo")
    monkeypatch.setenv("MUSE_PROFILE", "echo")
    assert muse.load(profile="writer", config=config_file).name == "writer"
    assert muse.load("writer", config=config_file).name == "writer"
    gen = muse.load("writer", config=config_file, temperature=0.1, max_tokens=2)
    assert (gen.defaults.temperature, gen.defaults.max_tokens) == (0.1, 2)


def test_overrides_merge_retry_table(config_file: Path) -> None:
    gen = muse.load("writer", config=config_file, retry={"max_attempts": 2})
    assert (gen.retry.settings.max_attempts, gen.retry.settings.max_wait_s) == (2, 20)
    assert muse.load("fake:echo", retry=7).retry.settings.max_attempts == 7


def test_config_from_mapping() -> None:
    gen = muse.load(
        config={"profiles": {"t": {"provider": "fake", "model": "echo"}}, "default": "t"}
    )
    assert gen.name == "t"


def test_model_spec_with_profile_must_match_provider(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert muse.load("fake:echo", profile="writer", config=config_file).model == "echo"
    monkeypatch.setitem(registry._registered, "other", "muse_sdk.providers.fake:FakeGenerator")
    with pytest.raises(muse.InvalidConfigError, match="provider 'other'"):
        muse.load("other:echo", profile="writer", config=config_file)


def bad(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


A = '[profiles.a]\nprovider = "fake"\nmodel = "echo"\n'


@pytest.mark.parametrize(
    ("text", "field", "match"),
    [
        (A + "temprature = 1", "temprature", "did you mean 'temperature'"),
        (A + "temperature = 5", "temperature", "less than or equal to 2"),
        (A + "max_tokens = -1", "max_tokens", "greater than or equal to 1"),
        (A + "retry = { max_attempts = 0 }", "retry.max_attempts", "greater"),
        (A + "retry = { tries = 3 }", "retry.tries", "Extra inputs"),
        (A + "retry = 3", "retry", "must be a table"),
        (A + 'latency_s = "slow"', "latency_s", "valid number"),
        (A + "fallbacks = [1]", "fallbacks", "list of profile names"),
        ('[profiles.a]\nprovider = "fake"', "model", "required"),
        ('[profiles.a]\nmodel = "echo"', "provider", "required"),
    ],
)
def test_profile_errors_name_file_profile_field(
    tmp_path: Path, text: str, field: str, match: str
) -> None:
    path = bad(tmp_path, text)
    config = Config.from_file(path)  # a profile is validated when it is used, not when read
    with pytest.raises(muse.InvalidConfigError, match=match) as info:
        muse.load("a", config=config)
    assert info.value.field == field and info.value.profile == "a"
    assert str(path) in str(info.value) and "profile 'a'" in str(info.value)
    with pytest.raises(muse.InvalidConfigError, match=match):
        config.profiles["a"]


@pytest.mark.parametrize(
    ("text", "field", "match"),
    [
        ("default = 3", "default", "must be a string"),
        ('defualt = "a"', "defualt", "did you mean 'default'"),
        ("profiles = 3", "profiles", "must hold tables"),
        ("[profiles]\na = 3", "profiles", "must hold tables"),
    ],
)
def test_file_errors_are_reported_when_read(
    tmp_path: Path, text: str, field: str, match: str
) -> None:
    path = bad(tmp_path, text)
    with pytest.raises(muse.InvalidConfigError, match=match) as info:
        Config.from_file(path)
    assert info.value.field == field and str(path) in str(info.value)


BROKEN = CONFIG.replace('default = "writer"', 'default = "typo"') + (
    '\n[profiles.typo]\nprovider = "fake"\nmodel = "echo"\ntemprature = 0.5\n'
)


def test_a_broken_profile_breaks_only_the_loads_that_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("muse.toml").write_text(BROKEN, encoding="utf-8")  # discovered in the working dir
    assert muse.load("fake:echo").generate("still works").text == "still works"
    assert muse.load("writer").name == "writer" and muse.load(profile="echo").name == "echo"
    with pytest.raises(muse.InvalidConfigError, match="did you mean 'temperature'") as info:
        muse.load("typo")
    assert info.value.profile == "typo"
    with pytest.raises(muse.InvalidConfigError, match="profile 'typo'"):
        muse.load()  # the default names the broken profile
    monkeypatch.setenv("MUSE_PROFILE", "echo")
    assert muse.load().name == "echo"  # the default is not used: nothing to report
    config = Config.discover()
    assert list(config.profiles) == ["writer", "echo", "typo"] and "typo" in config.profiles
    assert config.profiles["echo"].model == "echo"


def test_a_bad_default_is_reported_when_the_default_is_used(tmp_path: Path) -> None:
    path = bad(tmp_path, 'default = "nope"\n' + A)
    config = Config.from_file(path)
    assert muse.load("a", config=config).name == "a"
    assert muse.load("fake:echo", config=config).model == "echo"
    with pytest.raises(muse.InvalidConfigError, match="'nope' is not defined") as info:
        muse.load(config=config)
    assert info.value.field == "default" and str(path) in str(info.value)


def test_a_fallback_chain_validates_the_profiles_it_names(tmp_path: Path) -> None:
    text = BROKEN + '\n[profiles.chain]\nprovider = "fake"\nmodel = "echo"\nfallbacks = ["typo"]\n'
    text += '\n[profiles.good]\nprovider = "fake"\nmodel = "echo"\nfallbacks = ["echo"]\n'
    path = bad(tmp_path, text)
    assert muse.load("good", config=path).generate("x").text == "x"
    with pytest.raises(muse.InvalidConfigError, match="temprature") as info:
        muse.load("chain", config=path)
    assert info.value.profile == "typo"


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(muse.InvalidConfigError, match="not valid TOML"):
        Config.from_file(bad(tmp_path, "[profiles\n"))


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(muse.InvalidConfigError, match="does not exist"):
        Config.from_file(tmp_path / "none.toml")
    monkeypatch.setenv("MUSE_CONFIG", str(tmp_path / "none.toml"))
    with pytest.raises(muse.InvalidConfigError, match="MUSE_CONFIG points at"):
        muse.load()


def test_unknown_profile_suggests(config_file: Path) -> None:
    with pytest.raises(muse.InvalidConfigError, match="did you mean 'writer'"):
        muse.load("writr", config=config_file)
    with pytest.raises(muse.InvalidConfigError, match="'fake:MODEL'"):
        muse.load("fake", config=config_file)


def test_bad_override_names_field_and_source() -> None:
    with pytest.raises(muse.InvalidConfigError, match=r"muse\.load\(\) arguments") as info:
        muse.load("fake:echo", temperature=-1)
    assert info.value.field == "temperature"


@pytest.mark.parametrize("spec", ["fake:", ":echo", "openai"])
def test_bad_model_spec(spec: str) -> None:
    with pytest.raises(muse.ConfigError):
        muse.load(spec)


def test_unknown_provider_in_file(tmp_path: Path) -> None:
    config = Config.from_file(bad(tmp_path, '[profiles.a]\nprovider = "fak"\nmodel = "x"'))
    with pytest.raises(muse.UnknownProviderError, match="did you mean 'fake'"):
        muse.load("a", config=config)
