"""``request.structure`` on the local path: the grammar it compiles to, tools in chat prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from muse_sdk.core.generator import Request
    from muse_sdk.core.types import Message
    from muse_sdk.providers.local._constraint import Grammar
    from muse_sdk.providers.local._loading import LoadedModel

__all__ = ["chat_text", "grammar_for", "vocab_size"]


def vocab_size(loaded: LoadedModel) -> int:
    """How wide the model's logits are (a checkpoint may pad its vocabulary past the tokenizer)."""
    model = loaded.model
    size = getattr(model, "vocab_size", None)  # the lean model
    if isinstance(size, int):
        return size
    embeddings = model.get_output_embeddings()
    if embeddings is not None:
        return int(embeddings.weight.shape[0])
    return int(model.config.vocab_size)


def grammar_for(loaded: LoadedModel, request: Request) -> Grammar | None:
    """The compiled grammar the request's rows follow (cached), ``None`` when unconstrained.

    A spec the grammar engine cannot compile raises ``InvalidParameterError`` here, in the
    caller's thread, before anything is queued.
    """
    structure = request.structure
    spec = structure.constraint() if structure is not None else None
    if spec is None:
        return None
    from muse_sdk.providers.local._constraint import compiler_for

    compiler = compiler_for(loaded.tokenizer, vocab_size(loaded), sorted(loaded.eos_ids))
    return compiler.compile(spec)


def chat_text(tokenizer: Any, messages: Sequence[Message], request: Request) -> str:
    """The chat template's rendering of ``messages``, the call's tools offered when it has any.

    Messages and tools take the shapes Hugging Face chat templates read: a tool call's
    ``function.arguments`` as a dict, tools as ``{"type": "function", "function": {...}}``.
    A template that knows nothing of tools ignores them.
    """
    kwargs: dict[str, Any] = {}
    structure = request.structure
    if structure is not None and structure.tools and structure.tool_choice != "none":
        kwargs["tools"] = [tool.openai_dict() for tool in structure.tools]
    rendered = tokenizer.apply_chat_template(
        [_template_message(m) for m in messages],
        tokenize=False,
        add_generation_prompt=True,
        **kwargs,
    )
    return str(rendered)


def _template_message(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": dict(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        data["name"] = message.name
    return data
