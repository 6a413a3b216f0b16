"""Constrained decoding: a call's ``schema``/``regex``/``choices`` as a token mask, with llguidance.

:func:`compiler_for` wraps one tokenizer (cached per tokenizer object); its :meth:`Compiler.compile`
turns an :class:`~muse_sdk.structured.OutputSpec` into a :class:`Grammar` (cached by
``spec.key``), and :meth:`Grammar.start` gives each generated row its own
:class:`RowConstraint`, which the row's :class:`~muse_sdk.providers.local._decode.Tracker`
advances with every token. Before each token, :func:`allowed` builds the ``[B, vocab]`` mask of
the batch's rows (unconstrained rows allow everything) and :func:`apply_mask` applies it after
the penalties and n-gram bans, before temperature/top-k/top-p: the constraint always wins, and a
row whose legal tokens were all banned samples among them from the raw logits instead.

JSON is compact (no whitespace between tokens, separators ``,`` and ``:``), so indentation can
never run away. Near the end of ``max_tokens`` the row is steered to close its value (see
``_steering``). llguidance was picked by measurement: ``docs/structured-engines.md``.
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from muse_sdk.errors import InvalidParameterError, UnsupportedParameterError

if TYPE_CHECKING:
    import torch

    from muse_sdk.providers.local._decode import Tracker
    from muse_sdk.structured import OutputSpec

__all__ = [
    "Compiler",
    "Grammar",
    "LogitsMasker",
    "RowConstraint",
    "allowed",
    "apply_mask",
    "compiler_for",
    "failure_of",
]

#: Compiled grammars kept per tokenizer (a template matcher each, a few hundred kB at most).
CACHE_SIZE = 256
_INSTALL = 'pip install "muse-sdk[local]" (it brings llguidance)'
_PARAM = {"json": "schema", "regex": "regex", "choices": "choices"}
_compilers: weakref.WeakKeyDictionary[Any, Compiler] = weakref.WeakKeyDictionary()
_compilers_lock = threading.Lock()


def _llguidance() -> Any:
    try:
        import llguidance
    except ImportError as exc:
        raise UnsupportedParameterError(
            "local", "schema/regex/choices", f"constrained decoding needs llguidance: {_INSTALL}"
        ) from exc
    return llguidance


def compiler_for(tokenizer: Any, vocab_size: int, eos_ids: Sequence[int]) -> Compiler:
    """The (shared) compiler of ``tokenizer`` for a model whose logits are ``vocab_size`` wide."""
    with _compilers_lock:
        compiler = _compilers.get(tokenizer)
        if compiler is None or compiler.vocab_size != vocab_size:
            compiler = Compiler(tokenizer, vocab_size, eos_ids)
            _compilers[tokenizer] = compiler
        return compiler


class Compiler:
    """Compiles output specs into grammars for one tokenizer; thread-safe."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: Sequence[int]) -> None:
        llg = _llguidance()
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UnsupportedParameterError(
                "local",
                "schema/regex/choices",
                "constrained decoding needs a fast (tokenizers-backed) tokenizer",
            )
        text = json.loads(backend.to_str())
        text["padding"] = text["truncation"] = None  # llguidance tokenises raw text
        self.vocab_size = vocab_size
        self.words = (vocab_size + 31) // 32
        self.eos = frozenset(eos_ids)
        self.llg_tokenizer = llg.LLTokenizer(
            json.dumps(text), n_vocab=vocab_size, eos_token=sorted(eos_ids) or None
        )
        self._cache: OrderedDict[str, Grammar] = OrderedDict()
        self._lock = threading.Lock()
        self._tables: Any = None

    def compile(self, spec: OutputSpec) -> Grammar:
        """The grammar of ``spec``: cached by ``spec.key``; a bad spec raises a typed error."""
        with self._lock:
            grammar = self._cache.get(spec.key)
            if grammar is not None:
                self._cache.move_to_end(spec.key)
                return grammar
        grammar = Grammar(self, spec.kind, self._matcher(spec))  # GIL released while it builds
        with self._lock:
            self._cache[spec.key] = grammar
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return grammar

    def _matcher(self, spec: OutputSpec) -> Any:
        llg = _llguidance()
        param = _PARAM[spec.kind]
        try:
            source = _grammar_source(llg, spec)
        except ValueError as exc:
            raise InvalidParameterError(param, f"cannot be compiled: {exc}") from None
        matcher = llg.LLMatcher(self.llg_tokenizer, source, log_level=0)
        if (
            matcher.is_error()
            and spec.kind == "json"
            and "Unimplemented keys" in matcher.get_error()
        ):
            # Keywords the grammar cannot express (uniqueItems, not, ...): constrain by the rest;
            # the core still validates the reply against the whole schema.
            source = _grammar_source(llg, spec, lenient=True)
            matcher = llg.LLMatcher(self.llg_tokenizer, source, log_level=0)
        if not matcher.is_error():
            probe = matcher.deep_copy()  # the first mask: a limit hit at once fails here
            probe.compute_bitmask()
            if probe.is_error():
                matcher = probe
        if matcher.is_error():
            message = matcher.get_error().splitlines()[0][:300]
            raise InvalidParameterError(param, f"cannot be compiled into a grammar: {message}")
        return matcher

    def tables(self) -> Any:
        """Per-token tables for budget steering (built on first use, ~0.2 s for 50k tokens)."""
        if self._tables is None:
            from muse_sdk.providers.local._steering import TokenTables

            self._tables = TokenTables(self.llg_tokenizer, self.vocab_size, self.eos)
        return self._tables


def _grammar_source(llg: Any, spec: OutputSpec, lenient: bool = False) -> str:
    if spec.kind == "json":
        # Compact JSON: no whitespace at all between tokens, "," and ":" separators.
        options = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        if lenient:
            options["lenient"] = True
        return str(llg.LLMatcher.grammar_from_json_schema(spec.json_schema, defaults=options))
    if spec.kind == "regex":
        assert spec.pattern is not None
        return str(llg.LLMatcher.grammar_from_regex(_rust_regex(spec.pattern)))
    # A Lark alternation of JSON-quoted literals: any text, no regex escaping to get wrong.
    return str(
        llg.LLMatcher.grammar_from_lark("start: " + " | ".join(map(json.dumps, spec.options)))
    )


def _rust_regex(pattern: str) -> str:
    r"""Python ``re`` syntax the Rust regex engine reads differently, made explicit.

    ``\Z`` (Python's end of string) becomes ``$``; ``\d``/``\w``/``\s`` keep Python's Unicode
    meaning, which is also Rust's. Look-arounds and back-references fail to compile.
    """
    return re.sub(r"(?<!\\)((?:\\\\)*)\\Z", r"\1$", pattern)


class Grammar:
    """A compiled spec: a template matcher, copied for every row that follows it."""

    def __init__(self, compiler: Compiler, kind: str, matcher: Any) -> None:
        self.compiler = compiler
        self.kind = kind
        self._template = matcher
        #: What closing the value takes from the start (steering; set on first use).
        self.initial_cost: int | None = None

    def start(self) -> RowConstraint:
        """A fresh matcher state for one generated row."""
        return RowConstraint(self, self.fresh())

    def fresh(self) -> Any:
        """A matcher at the start of the grammar."""
        return self._template.deep_copy()

    def failure(self, reason: str) -> InvalidParameterError:
        """The error of a call whose row the grammar engine gave up on mid-way."""
        first = (reason.strip().splitlines() or ["unknown"])[0][:300]
        return InvalidParameterError(
            _PARAM[self.kind], f"is too complex for constrained decoding: {first}"
        )


class RowConstraint:
    """One row's place in its grammar; advanced with each token the row gets."""

    __slots__ = ("grammar", "lexed", "matcher", "next_check", "steering", "tokens")

    def __init__(self, grammar: Grammar, matcher: Any) -> None:
        self.grammar = grammar
        self.matcher = matcher
        self.tokens: list[int] = []
        #: Remaining budget at which to look again at what closing the value would take.
        self.next_check = 1 << 30
        self.steering = False
        #: (JSON lexer state, tokens lexed so far, trailing spaces), for the steering code.
        self.lexed = (0, 0, 0)

    def advance(self, token: int) -> bool:
        """Consume ``token``; whether the row must end (its grammar allows nothing more).

        A token the grammar refuses (which the mask never lets through) ends the row too: the
        core's validation of the reply reports it, and the batch's other rows run on.
        """
        if token in self.grammar.compiler.eos:
            return True
        if not self.matcher.consume_token(token):
            return True
        self.tokens.append(token)
        return bool(self.matcher.is_stopped())

    def accepts(self, text: str) -> bool:
        """Whether ``text``, from the start, is a complete reply (a stop string may end it)."""
        matcher = self.grammar.fresh()
        tokens = self.grammar.compiler.llg_tokenizer.tokenize_str(text)
        return bool(matcher.consume_tokens(tokens) and matcher.is_accepting())

    @property
    def error(self) -> str:
        """Why the grammar engine gave up on this row (a limit hit mid-way), or ``""``."""
        return str(self.matcher.get_error()) if self.matcher.is_error() else ""


def failure_of(constraint: RowConstraint | None) -> Exception | None:
    """The error of a row whose grammar engine gave up (a limit hit mid-way), if it did."""
    if constraint is None or not constraint.error:
        return None
    return constraint.grammar.failure(constraint.error)


def allowed(
    constraints: Sequence[RowConstraint | None], remaining: Sequence[int]
) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
    """The ``[B, vocab]`` boolean mask of legal next tokens, ``None`` when no row is constrained.

    ``remaining[i]`` is how many tokens row ``i`` may still produce, this one included: rows
    near the end are steered towards closing their value.
    """
    rows = [(i, c) for i, c in enumerate(constraints) if c is not None]
    if not rows:
        return None
    compiler = rows[0][1].grammar.compiler
    bits = np.full((len(constraints), compiler.words), -1, dtype=np.int32)
    for i, constraint in rows:
        row = bits[i]
        constraint.matcher.unsafe_compute_mask_ptr(row.ctypes.data, row.nbytes)
    mask = np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")
    legal = mask[:, : compiler.vocab_size].view(np.bool_)
    from muse_sdk.providers.local._steering import cap_whitespace, steer

    for i, constraint in rows:
        if constraint.matcher.is_error():
            continue  # the caller fails the row's call (RowConstraint.error)
        if constraint.grammar.kind == "json":
            cap_whitespace(constraint, legal[i])
        if remaining[i] <= constraint.next_check or constraint.steering:
            steer(constraint, legal[i], remaining[i])
    return legal


def apply_mask(scores: torch.Tensor, raw: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """``scores`` with illegal tokens at -inf: the constraint wins over penalties and bans.

    A row left with no finite legal score (``no_repeat_ngram_size`` banned every legal token)
    takes its legal tokens' ``raw`` logits instead.
    """
    import torch

    masked = scores.masked_fill(~legal, float("-inf"))
    dead = torch.isneginf(masked).all(dim=-1)
    if bool(dead.any()):
        fallback = raw.masked_fill(~legal, float("-inf"))
        masked = torch.where(dead[:, None], fallback, masked)
    return masked


class LogitsMasker:
    """The grammar mask as a transformers logits processor (the ``model.generate`` path).

    ``generate`` runs custom processors after its repetition penalty and n-gram ban and before
    its temperature/top-k/top-p warpers, the same order as the engine. It does not hand over the
    raw logits, so a row whose legal tokens were all banned samples them uniformly instead.
    The ``tracker`` advances each row's constraint as tokens arrive.
    """

    def __init__(self, tracker: Tracker, max_new: int) -> None:
        self._tracker = tracker
        self._max_new = max_new

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        rows = self._tracker.rows
        constraints = [row.constraint if row.finish_reason is None else None for row in rows]
        legal = allowed(constraints, [self._max_new - len(row.token_ids) for row in rows])
        if legal is None:
            return scores
        for constraint in constraints:
            if constraint is not None and constraint.error:
                raise constraint.grammar.failure(constraint.error)
        mask = torch.from_numpy(legal).to(scores.device)
        return apply_mask(scores, torch.zeros_like(scores), mask)
