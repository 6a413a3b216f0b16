"""The served models: loaded in the background after the server starts, then looked up by name.

A model is served under an id (``-m NAME=SPEC`` names it; otherwise a ``provider:model`` spec is
served as its model part and a profile as its profile name) and answers to its spec and its
generator's name too, so ``muse-tiny``, ``local:muse-tiny`` and a profile name all work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from muse_sdk.core.generator import Generator
from muse_sdk.errors import InvalidConfigError, MuseError
from muse_sdk.server._errors import ApiError, logger

__all__ = ["ModelTable", "ServedModel", "split_spec"]

Loader = Callable[[str | None], Generator]
State = Literal["loading", "ready", "failed"]


@dataclass(frozen=True)
class ServedModel:
    """One served generator and the names it answers to."""

    id: str
    generator: Generator
    aliases: frozenset[str]
    created: int


def split_spec(spec: str | None) -> tuple[str | None, str | None]:
    """``"name=spec"`` -> (name, spec); a plain spec has no name; ``None`` is the default."""
    if spec is None:
        return None, None
    name, sep, rest = spec.partition("=")
    if sep and name and rest and ":" not in name:
        return name.strip(), rest.strip()
    return None, spec


class ModelTable:
    """The models a server answers for, and whether they are ready yet."""

    def __init__(self, specs: Sequence[str | None], loader: Loader) -> None:
        self.specs = list(specs) or [None]
        self._loader = loader
        self.state: State = "loading"
        self.error: str | None = None
        self.models: list[ServedModel] = []
        self._by_name: dict[str, ServedModel] = {}

    async def load(self) -> None:
        """Load every model in a worker thread; on failure, record why (state ``failed``)."""
        try:
            for spec in self.specs:
                name, source = split_spec(spec)
                generator = await asyncio.to_thread(self._loader, source)
                self._add(name, source, generator)
        except Exception as exc:  # any failure: the server reports it and exits
            self.state = "failed"
            self.error = str(exc) if isinstance(exc, MuseError) else type(exc).__name__
            logger.error("loading the models failed: %s", exc)
            await self.aclose()
            return
        self.state = "ready"
        logger.info("serving %s", ", ".join(m.id for m in self.models))

    def _add(self, name: str | None, spec: str | None, generator: Generator) -> None:
        if name is not None:
            served_id = name
        elif spec is not None and ":" not in spec:
            served_id = spec  # a profile: clients know it by its name
        else:
            served_id = generator.model
        if served_id in self._by_name:
            generator.close()
            raise InvalidConfigError(
                f"two served models answer to {served_id!r}; name them apart with "
                f"-m NAME=SPEC (e.g. -m other={spec or generator.name})",
                field="model",
            )
        aliases = {served_id, generator.name, f"{generator.provider}:{generator.model}"}
        if spec is not None:
            aliases.add(spec)
        served = ServedModel(served_id, generator, frozenset(aliases), int(time.time()))
        self.models.append(served)
        self._by_name[served_id] = served
        for alias in aliases:  # a spec served twice answers, by its spec, as the first one
            self._by_name.setdefault(alias, served)

    def get(self, name: object) -> ServedModel:
        """The model a request names (the first one when it names none)."""
        if self.state == "loading":
            raise ApiError(
                503,
                "the model is still loading; retry shortly",
                retry_after=2,
                code="model_loading",
            )
        if self.state == "failed":
            raise ApiError(503, f"the model failed to load: {self.error}", code="model_failed")
        if name is None or name == "":
            return self.models[0]
        served = self._by_name.get(name) if isinstance(name, str) else None
        if served is None:
            known = ", ".join(m.id for m in self.models)
            raise ApiError(
                404,
                f"the model {name!r} is not served here; served: {known}",
                param="model",
                code="model_not_found",
            )
        return served

    def listing(self) -> dict[str, Any]:
        """The ``GET /v1/models`` body."""
        return {"object": "list", "data": [self.describe(m) for m in self.models]}

    @staticmethod
    def describe(model: ServedModel) -> dict[str, Any]:
        """One model object as OpenAI lists it."""
        owner = f"muse:{model.generator.provider}"
        return {"id": model.id, "object": "model", "created": model.created, "owned_by": owner}

    async def aclose(self) -> None:
        """Close every loaded generator (frees local models and HTTP clients)."""
        for served in self.models:
            with contextlib.suppress(Exception):
                await served.generator.aclose()
        self.models.clear()
        self._by_name.clear()
