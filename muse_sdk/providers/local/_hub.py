"""Deciding quickly whether a hub model can be had, and saying how to get it when it cannot.

A model that is neither in the Hugging Face cache nor reachable would otherwise cost an import of
torch and transformers and then a minute of the hub client's retries. Here, before any of that,
the cache is read from disk and the hub gets one short probe; when neither can supply the model
the error comes at once, in one line, naming a command that exists in this environment.
Stdlib only: nothing here imports torch, transformers or huggingface_hub.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from muse_sdk.errors import BackendUnavailableError, MuseError, UnknownModelError
from muse_sdk.models import (
    HUB_MODELS,
    cached_snapshot,
    hf_hub_cache,
    hf_offline,
    known_model_names,
)

__all__ = [
    "PROBE_TIMEOUT_S",
    "check_hub_model",
    "download_command",
    "hub_endpoint",
    "hub_reachable",
    "not_on_hub_error",
]

#: The longest wait for the hub to answer one request before muse calls it unreachable.
PROBE_TIMEOUT_S = 1.5
#: How long a probe's answer is reused: a load asks several times (tokenizer, weights).
_PROBE_TTL_S = 30.0
_probes: dict[str, tuple[float, bool]] = {}
_DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_endpoint() -> str:
    """The hub's base URL (``HF_ENDPOINT``, for a mirror, else huggingface.co)."""
    return (os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT).rstrip("/")


def hub_reachable(timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub answers one HTTP request within ``timeout_s`` (proxies from the env).

    The request runs in a daemon thread that is waited for at most ``timeout_s``, because a
    name lookup (DNS) ignores socket timeouts and can hang far longer on a cut-off machine.
    """
    endpoint = hub_endpoint()
    now = time.monotonic()
    memo = _probes.get(endpoint)
    if memo is not None and now - memo[0] < _PROBE_TTL_S:
        return memo[1]
    answered: list[bool] = []
    worker = threading.Thread(
        target=lambda: answered.append(_answers(endpoint, timeout_s)),
        name="muse-hub-probe",
        daemon=True,
    )
    worker.start()
    worker.join(timeout_s)
    reachable = bool(answered and answered[0])
    _probes[endpoint] = (time.monotonic(), reachable)
    return reachable


def _answers(url: str, timeout_s: float) -> bool:
    import ssl
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method="HEAD"), timeout=timeout_s
        ) as reply:
            return int(reply.status) < 500
    except urllib.error.HTTPError as exc:  # an answer, even a 404, means the hub is there
        return exc.code < 500
    except urllib.error.URLError as exc:
        # A certificate failure means something answered (perhaps a proxy with its own CA,
        # which the hub client may trust where urllib does not): let the download decide.
        return isinstance(exc.reason, ssl.SSLCertVerificationError)
    except Exception:  # any other failure (DNS, refused, timed out, a bad URL): unreachable
        return False


def _hf_cli() -> str | None:
    """``hf`` (huggingface_hub's CLI) as the user can type it here, or ``None`` if absent."""
    beside = shutil.which("hf", path=str(Path(sys.executable).parent))
    on_path = shutil.which("hf")
    if beside is None:
        return "hf" if on_path else None
    if on_path is not None and Path(on_path).resolve() == Path(beside).resolve():
        return "hf"
    return beside  # a virtual environment that is not activated


def download_command(repo_id: str) -> str:
    """A command, runnable in this environment, that puts ``repo_id`` in the HF cache."""
    cli = _hf_cli()
    if cli is None:
        return f"python -c \"import huggingface_hub as h; h.snapshot_download('{repo_id}')\""
    if repo_id in HUB_MODELS:  # their repos also hold TF, Flax, ONNX and tflite copies: GBs
        patterns = " ".join(f"--include '{p}'" for p in ("*.json", "*.txt", "*.safetensors"))
        return f"{cli} download {repo_id} {patterns}"
    return f"{cli} download {repo_id}"


def check_hub_model(name: str, revision: str | None) -> None:
    """Raise at once when hub model ``name`` is neither cached nor downloadable now.

    :class:`~muse_sdk.errors.BackendUnavailableError` for a model muse knows (with the command
    that gets its weights), :class:`~muse_sdk.errors.UnknownModelError` for any other name.
    """
    if cached_snapshot(name, revision) is not None:
        return
    offline = hf_offline()
    if not offline and hub_reachable():
        return
    raise _missing_error(name, offline)


def _missing_error(name: str, offline: bool) -> MuseError:
    cache = hf_hub_cache()
    why = "HF_HUB_OFFLINE is set" if offline else f"{hub_endpoint()} cannot be reached"
    known = known_model_names()
    if name in known:
        skip = "" if offline else "; set HF_HUB_OFFLINE=1 to skip the network check"
        return BackendUnavailableError(
            f"the weights of {name!r} are not in the Hugging Face cache ({cache}) and {why}: "
            f"download them where there is network with `{download_command(name)}` (copy the "
            "cache folder here if that is another machine), or save_pretrained() the model and "
            "its tokenizer to a directory and use 'local:/path/to/dir'; 'local:muse-tiny' ships "
            f"with muse-sdk and needs no download{skip}"
        )
    suggestions = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    # A likely typo gets no advice to download it: that model probably does not exist.
    get = "" if suggestions else f"; if it is a hub model, get it with `{download_command(name)}`"
    return UnknownModelError(
        name,
        suggestions,
        f"it is not shipped with muse-sdk, not a directory, not in the Hugging Face cache "
        f"({cache}), and the hub cannot be asked ({why}). Models muse knows: "
        f"{_listing(known)}{get}",
    )


def not_on_hub_error(name: str) -> UnknownModelError:
    """The hub answered that ``name`` does not exist (or is private to someone else)."""
    suggestions = difflib.get_close_matches(name, known_model_names(), n=3, cutoff=0.6)
    cli = _hf_cli() or "hf"
    return UnknownModelError(
        name,
        suggestions,
        f"{hub_endpoint()} has no model of that name (for a private model, log in with "
        f"`{cli} auth login`). Models muse knows: {_listing(known_model_names())}",
    )


def _listing(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more (muse models)"
