"""Budget steering: near the end of ``max_tokens``, close the value instead of running out.

A row checks, now and then, how many tokens closing its value would take from where it is: it
plays the grammar forward on a copy of its matcher (:func:`closing_cost`), each step taking the
legal token that closes the most. :class:`TokenTables` scores every token by the JSON structure
it closes or opens, given whether it starts inside a string; a token that only adds content
(digits, letters, a string's characters) scores below any comma or bracket. Where only content
is legal (an e-mail's local part, a time's fraction digits) the play-forward looks one token
ahead, trying one token of each kind of byte, and takes the one after which the grammar gets
closest to closing (end-of-text or structure legal next, else the fewest tokens legal).
Among equals it takes the longest token.

When that cost, plus a margin, reaches the tokens left, the row is *steered*: from then on it may
only pick among the legal tokens that close the most, or the play-forward's own token where
only content is legal, and end-of-text as soon as the grammar accepts it. The next check is
scheduled half-way to the point where steering would start, so a row far from the end checks
rarely; the first check's cost is the same for every row of a grammar and is computed once.

Regex and choices grammars have no structure to score: every legal token ties, and the
look-ahead alone steers them towards the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from muse_sdk.providers.local._constraint import RowConstraint

__all__ = ["WHITESPACE_RUN", "TokenTables", "cap_whitespace", "closing_cost", "steer"]

#: The longest run of spaces a JSON reply may hold (inside strings: compact JSON has none else).
WHITESPACE_RUN = 16

# JSON lexer states at a token boundary: outside any string, inside one, just after a backslash.
_OUT, _IN, _ESC = 0, 1, 2
_QUOTE, _BACKSLASH, _COMMA = 0x22, 0x5C, 0x2C


class TokenTables:
    """For every token and lexer state: its closing score, the state after it, its length."""

    def __init__(self, llg_tokenizer: Any, vocab_size: int, eos: frozenset[int]) -> None:
        size = min(vocab_size, int(llg_tokenizer.vocab_size))
        self.length = np.zeros(vocab_size, dtype=np.int32)
        self.first = np.zeros(vocab_size, dtype=np.uint8)  # a token's first byte
        # Spaces a token starts and ends with (all of it, if it is only spaces), and whether it
        # holds a run longer than WHITESPACE_RUN itself.
        self.lead = np.zeros(vocab_size, dtype=np.int32)
        self.tail = np.zeros(vocab_size, dtype=np.int32)
        self.long = np.zeros(vocab_size, dtype=np.bool_)
        self.score = np.full((3, vocab_size), -(1 << 20), dtype=np.int32)
        self.after = np.zeros((3, vocab_size), dtype=np.int8)
        for token in range(size):
            if token in eos or llg_tokenizer.is_special_token(token):
                continue
            data = llg_tokenizer.decode_bytes([token])
            self.length[token] = len(data)
            self.first[token] = data[0] if data else 0
            self.lead[token] = len(data) - len(data.lstrip(b" "))
            self.tail[token] = len(data) - len(data.rstrip(b" "))
            self.long[token] = b" " * (WHITESPACE_RUN + 1) in data
            for state in (_OUT, _IN, _ESC):
                self.score[state, token], self.after[state, token] = _lex(data, state)
        self.eos = np.array(sorted(e for e in eos if e < vocab_size), dtype=np.int64)


def _lex(data: bytes, state: int) -> tuple[int, int]:
    """Score ``data`` read from ``state``: closing brackets and strings up, opening them down."""
    closes = opens = commas = strings_closed = strings_opened = content = 0
    for byte in data:
        if state == _IN:
            if byte == _BACKSLASH:
                state = _ESC
            elif byte == _QUOTE:
                state, strings_closed = _OUT, strings_closed + 1
                continue
            content = 1
        elif state == _ESC:
            state = _IN
        elif byte == _QUOTE:
            state, strings_opened = _IN, strings_opened + 1
        elif byte in b"{[":
            opens += 1
        elif byte in b"}]":
            closes += 1
        elif byte == _COMMA:  # another member or item follows
            commas += 1
        elif byte != 0x3A:  # ':' is neutral; digits and letters of numbers and literals are not
            content = 1
    score = 2 * (closes - opens) - commas + 3 * (strings_closed - strings_opened) - 2 * content
    return score, state


def _lex_state(constraint: RowConstraint, tables: TokenTables) -> int:
    """The row's JSON lexer state after its tokens so far (incremental)."""
    return _lex_row(constraint, tables)[0]


def _lex_row(constraint: RowConstraint, tables: TokenTables) -> tuple[int, int]:
    """The row's JSON lexer state and the run of spaces its text ends with (incremental)."""
    state, done, spaces = constraint.lexed
    tokens = constraint.tokens
    for token in tokens[done:]:
        state = int(tables.after[state, token])
        tail = int(tables.tail[token])
        spaces = spaces + tail if tail == tables.length[token] else tail
    constraint.lexed = (state, len(tokens), spaces)
    return state, spaces


def cap_whitespace(constraint: RowConstraint, legal: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
    """Narrow ``legal`` in place so that no run of spaces grows past :data:`WHITESPACE_RUN`.

    A language model that writes code indents; in a JSON string that is a long run of spaces.
    The cap gives way when only such tokens are legal (a schema's pattern may ask for spaces).
    """
    tables = constraint.grammar.compiler.tables()
    _, spaces = _lex_row(constraint, tables)
    bad = tables.long | (tables.lead > WHITESPACE_RUN - spaces) if spaces else tables.long
    narrowed = legal & ~bad
    if narrowed.any():
        legal[:] = narrowed


def _legal(matcher: Any, words: int, vocab: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    bits = np.empty(words, dtype=np.int32)
    matcher.unsafe_compute_mask_ptr(bits.ctypes.data, bits.nbytes)
    return np.unpackbits(bits.view(np.uint8), bitorder="little")[:vocab].view(np.bool_)


#: A class of equally good tokens larger than this is "only content": look one token ahead.
_LOOKAHEAD_OVER = 8
_DONE = 1 << 20  # the look-ahead score of a token after which end-of-text is legal


def _best(
    legal: np.ndarray[Any, np.dtype[np.bool_]], tables: TokenTables, state: int, json: bool
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The legal tokens that close the most (all legal tokens for regex and choices)."""
    candidates = np.flatnonzero(legal)
    if not json or len(candidates) == 0:
        return candidates
    scores = tables.score[state, candidates]
    best: np.ndarray[Any, np.dtype[np.int64]] = candidates[scores == scores.max()]
    return best


def _pick(
    matcher: Any,
    best: np.ndarray[Any, np.dtype[np.int64]],
    tables: TokenTables,
    state: int,
    json: bool,
    compiler: Any,
) -> int:
    """The play-forward's token among ``best``: the longest, or the look-ahead's choice."""
    longest = int(best[np.argmax(tables.length[best])])
    if len(best) <= _LOOKAHEAD_OVER:
        return longest
    # One token of each kind: one letter, one digit, each other single byte; and the longest.
    kinds: dict[int, int] = {}
    for token in best[tables.length[best] == 1]:
        byte = tables.first[token]
        kind = 1 if chr(byte).isalpha() else 2 if chr(byte).isdigit() else 3 + byte
        kinds.setdefault(kind, int(token))
    trials = [longest, *kinds.values()]
    if len(trials) == 1:
        return longest
    scored = []
    for token in trials:
        ahead = matcher.deep_copy()
        if not ahead.consume_token(token):
            continue
        after = int(tables.after[state, token]) if json else _OUT
        if ahead.is_stopped():
            scored.append(((_DONE, 0, 0), token))
            continue
        legal = _legal(ahead, compiler.words, compiler.vocab_size)
        if len(tables.eos) and legal[tables.eos].any():
            value = _DONE
        else:
            nxt = np.flatnonzero(legal)
            value = int(tables.score[after, nxt].max()) if json and len(nxt) else 0
        scored.append(((value, -int(legal.sum()), int(tables.length[token])), token))
    return max(scored)[1] if scored else longest


def closing_cost(constraint: RowConstraint, limit: int) -> int:
    """Tokens needed to complete the value from here (end-of-text included), or ``limit + 1``."""
    grammar = constraint.grammar
    if not constraint.tokens and grammar.initial_cost is not None:
        return grammar.initial_cost  # every row of the grammar starts alike
    compiler = grammar.compiler
    tables = compiler.tables()
    json = grammar.kind == "json"
    matcher = constraint.matcher.deep_copy()
    state = _lex_state(constraint, tables) if json else _OUT
    cost = limit + 1
    for spent in range(limit + 1):
        if matcher.is_stopped():
            cost = spent
            break
        legal = _legal(matcher, compiler.words, compiler.vocab_size)
        if len(tables.eos) and legal[tables.eos].any():
            cost = spent + 1
            break
        best = _best(legal, tables, state, json)
        if len(best) == 0:
            break
        token = _pick(matcher, best, tables, state, json, compiler)
        if not matcher.consume_token(token):
            break
        state = int(tables.after[state, token])
    if not constraint.tokens and cost <= limit:
        grammar.initial_cost = cost
    return cost


def steer(
    constraint: RowConstraint, legal: np.ndarray[Any, np.dtype[np.bool_]], remaining: int
) -> None:
    """Check the row's budget (when due) and, once steered, narrow ``legal`` in place."""
    if not constraint.steering:
        need = closing_cost(constraint, remaining)
        gap = remaining - need - (2 + need // 4)  # the margin: the model picks shorter tokens
        if gap > 0:
            constraint.next_check = remaining - max(1, gap // 2)
            return
        constraint.steering = True
    compiler = constraint.grammar.compiler
    tables = compiler.tables()
    if len(tables.eos) and legal[tables.eos].any():
        keep = tables.eos[legal[tables.eos]]
    else:
        json = constraint.grammar.kind == "json"
        state = _lex_state(constraint, tables) if json else _OUT
        keep = _best(legal, tables, state, json)
        if len(keep) > _LOOKAHEAD_OVER:  # only content: the play-forward's own token
            token = _pick(constraint.matcher, keep, tables, state, json, compiler)
            keep = np.array([token], dtype=np.int64)
    if len(keep):
        legal[:] = False
        legal[keep] = True
