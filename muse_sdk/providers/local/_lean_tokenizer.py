"""A GPT-2 tokenizer on ``tokenizers`` alone, so the lean path never imports transformers.

:class:`LeanTokenizer` offers the part of a transformers tokenizer that the local provider uses
(``__call__``, ``decode``, the special-token ids, ``convert_ids_to_tokens``,
``added_tokens_decoder``, ``backend_tokenizer``, ``len()``, ``chat_template``,
``model_max_length``) and gives the same ids as ``AutoTokenizer`` on the same directory.
Directories it cannot reproduce exactly (no ``tokenizer.json``) raise
:class:`UnsupportedCheckpointError`, and the caller loads transformers instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from muse_sdk.providers.local._gpt2_checkpoint import UnsupportedCheckpointError, read_json

__all__ = ["LeanTokenizer"]

# transformers' value for "no limit" (VERY_LARGE_INTEGER), kept so callers compare alike.
_NO_LIMIT = int(1e30)
# The special-token attributes transformers knows, in the order all_special_ids lists them.
_SPECIAL_ATTRS = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")


def _content(token: Any) -> str | None:
    """A special token from tokenizer_config.json: a string, or ``{"content": ...}``."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


class LeanTokenizer:
    """The tokenizer of a Hugging Face GPT-2 directory, read with ``tokenizers`` directly."""

    def __init__(self, directory: str | Path) -> None:
        from tokenizers import Tokenizer, pre_tokenizers

        root = Path(directory)
        path = root / "tokenizer.json"
        if not path.is_file():
            raise UnsupportedCheckpointError(
                f"{root} has no tokenizer.json; the lean tokenizer needs one (transformers "
                "can build it from vocab.json and merges.txt)"
            )
        self.backend_tokenizer = Tokenizer.from_file(str(path))
        config = read_json(root / "tokenizer_config.json")
        self._config = config
        # transformers rebuilds GPT-2's pre-tokenizer from add_prefix_space; do the same.
        if config.get("add_prefix_space") and isinstance(
            self.backend_tokenizer.pre_tokenizer, pre_tokenizers.ByteLevel
        ):
            self.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        self._tokens = {attr: _content(config.get(f"{attr}_token")) for attr in _SPECIAL_ATTRS}
        if not config:  # no tokenizer_config.json: take the ids the model config names
            self._tokens.update(self._tokens_from_model_configs(root))
        extra = config.get("extra_special_tokens") or config.get("additional_special_tokens")
        self._extra = [t for t in (_content(x) for x in (extra or [])) if t is not None]
        self.model_max_length: int = int(config.get("model_max_length") or _NO_LIMIT)
        self.chat_template: str | None = self._read_chat_template(root, config)

    def _tokens_from_model_configs(self, root: Path) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for name in ("generation_config.json", "config.json"):
            data = read_json(root / name)
            for attr in ("bos", "eos", "pad"):
                value = data.get(f"{attr}_token_id")
                if found.get(attr) is None and isinstance(value, int):
                    found[attr] = self.backend_tokenizer.id_to_token(value)
        return found

    @staticmethod
    def _read_chat_template(root: Path, config: dict[str, Any]) -> str | None:
        jinja = root / "chat_template.jinja"  # where transformers 5 saves it
        if jinja.is_file():
            return jinja.read_text(encoding="utf-8")
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: the "default" one
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default")
        return template if isinstance(template, str) else None

    # --- special tokens ------------------------------------------------------------------------

    def _id(self, attr: str) -> int | None:
        token = self._tokens.get(attr)
        return None if token is None else self.backend_tokenizer.token_to_id(token)

    @property
    def eos_token(self) -> str | None:
        """The end-of-sequence token."""
        return self._tokens["eos"]

    @property
    def bos_token(self) -> str | None:
        """The beginning-of-sequence token."""
        return self._tokens["bos"]

    @property
    def pad_token(self) -> str | None:
        """The padding token (GPT-2 has none)."""
        return self._tokens["pad"]

    @property
    def eos_token_id(self) -> int | None:
        """The id of the end-of-sequence token."""
        return self._id("eos")

    @property
    def bos_token_id(self) -> int | None:
        """The id of the beginning-of-sequence token."""
        return self._id("bos")

    @property
    def pad_token_id(self) -> int | None:
        """The id of the padding token, ``None`` when there is none (as in transformers)."""
        return self._id("pad")

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token named in the config, once each, in transformers' order."""
        named = [self._tokens[attr] for attr in _SPECIAL_ATTRS]
        return list(dict.fromkeys(t for t in [*named, *self._extra] if t is not None))

    @property
    def all_special_ids(self) -> list[int]:
        """The ids of :attr:`all_special_tokens`."""
        ids = (self.backend_tokenizer.token_to_id(t) for t in self.all_special_tokens)
        return [i for i in ids if i is not None]

    @property
    def added_tokens_decoder(self) -> dict[int, Any]:
        """Added tokens by id: ``tokenizers.AddedToken`` objects (``.content``, ``.special``)."""
        return dict(self.backend_tokenizer.get_added_tokens_decoder())

    # --- encoding and decoding -----------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The token ids of ``text``."""
        # Special tokens come from tokenizer.json's post-processor alone: transformers 5 builds
        # GPT-2's tokenizer from that file and ignores add_bos_token, and so do we.
        encoding = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return list(encoding.ids)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        """``{"input_ids": ..., "attention_mask": ...}`` for one text, as transformers returns."""
        ids = self.encode(text, add_special_tokens=add_special_tokens)
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The text of ``ids``; transformers 5 does no space clean-up for BPE, nor do we."""
        ids = [int(i) for i in ids]
        return str(self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> Any:
        """The token string of an id, or a list of them (``None`` for unknown ids)."""
        if isinstance(ids, int):
            return self.backend_tokenizer.id_to_token(ids)
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids]

    def apply_chat_template(
        self,
        messages: Sequence[dict[str, Any]],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Render ``messages`` with the checkpoint's chat template (jinja2, sandboxed)."""
        if self.chat_template is None:
            raise UnsupportedCheckpointError("this tokenizer has no chat template")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message: str) -> None:
            raise ValueError(message)

        env.globals["raise_exception"] = raise_exception
        specials = {f"{attr}_token": token for attr, token in self._tokens.items()}
        text = env.from_string(self.chat_template).render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            **specials,
            **kwargs,
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text
