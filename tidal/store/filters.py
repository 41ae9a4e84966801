r"""The run-search filter language: parsed into a small tree, never pasted into SQL.

Examples::

    metrics.accuracy > 0.9 and params.model = 'hgb'
    (tags.team = "fraud" or tags.team = "risk") and status = 'FINISHED'
    params.max_depth >= 6 and not metrics.`val loss` > 0.3
    name like 'elec2-%' and metrics.auc is not null
    params.model in ('hgb', 'logreg')

``like`` is case-sensitive (``ilike`` is not); ``%`` and ``_`` are wildcards and a
backslash makes them literal (``'run\_%'``). ``true`` and ``false`` match logged
booleans whatever their case.

A field is ``metrics.KEY``, ``params.KEY``, ``tags.KEY`` or a run attribute (``status``,
``name``, ``run_id``, ``experiment``, ``actor``, ``git_commit``, ``start_time``,
``end_time``; ``attributes.status`` works too). Keys with spaces or other characters go
in backticks or double quotes. Keywords are case-insensitive.

Written by hand rather than with a parser generator: the grammar is a dozen rules, and
the point of the module is its error messages (a caret under the offending character
and a hint of what was expected), which generic parser errors do not give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tidal.core.errors import FilterSyntaxError

FieldKind = Literal["metric", "param", "tag", "attribute"]

PREFIXES: dict[str, FieldKind] = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute",
}
#: attribute name → whether it holds a number (times) or a string
ATTRIBUTES: dict[str, str] = {
    "status": "string", "name": "string", "run_id": "string", "id": "string",
    "experiment": "string", "actor": "string", "git_commit": "string",
    "start_time": "number", "end_time": "number",
}
COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}
KEYWORDS = {"and", "or", "not", "in", "like", "ilike", "is", "null", "asc", "desc"}
#: values in one ``in (...)`` list (PostgreSQL takes at most 65,535 bound parameters)
MAX_IN_VALUES = 1_000

#: ``prefix.key`` as one token, so keys may hold dots and digit-led parts (layer.1.loss)
_FIELD = (
    r"(?i:metrics|metric|params|param|tags|tag|attributes|attribute|attr)\."
    r"(?:`[^`]*`|\"(?:[^\"\\]|\\.|\"\")*\"|[A-Za-z0-9_\-/:]+(?:\.[A-Za-z0-9_\-/:]+)*)"
)
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<field>""" + _FIELD + r""")
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<quoted>`[^`]*`)
  | (?P<op>==|!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-/:]*)
    """,
    re.VERBOSE,
)
#: deeper nesting than this is refused (and would exhaust Python's stack long before SQL)
MAX_DEPTH = 64


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, quoted, op, punct, word, end
    text: str
    position: int


@dataclass(frozen=True)
class Field:
    kind: FieldKind
    name: str

    def __str__(self) -> str:
        return self.name if self.kind == "attribute" else f"{self.kind}s.{self.name}"


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # one of COMPARISONS, "in", "like", "ilike", "is null", "is not null"
    value: float | str | tuple[float | str, ...] | None


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool = False


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterSyntaxError(f"unexpected character {text[position]!r}", text, position)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def parse_filter(text: str | None) -> Node | None:
    """Parse a filter string; an empty or blank filter means "every run"."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text)
    node = parser.expression()
    parser.expect_end()
    return node


def parse_order_by(clauses: list[str] | tuple[str, ...] | None) -> list[OrderKey]:
    """Parse ``["metrics.auc desc", "start_time"]`` into order keys."""
    keys: list[OrderKey] = []
    for clause in clauses or ():
        parser = _Parser(clause)
        field = parser.field()
        descending = False
        if parser.peek_word("desc", "asc"):
            descending = parser.next().text.lower() == "desc"
        parser.expect_end()
        keys.append(OrderKey(field, descending))
    return keys


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    # -- token helpers -------------------------------------------------------------
    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def peek_word(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() in words

    def fail(self, message: str, token: Token | None = None) -> FilterSyntaxError:
        token = token or self.peek()
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        return FilterSyntaxError(f"{message}, found {found}", self.text, token.position)

    def expect_punct(self, char: str) -> None:
        token = self.next()
        if token.kind != "punct" or token.text != char:
            raise self.fail(f"expected {char!r}", token)

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            raise self.fail("expected 'and', 'or' or the end of the filter")

    # -- grammar ----------------------------------------------------------------------
    def expression(self) -> Node:
        items = [self.conjunction()]
        while self.peek_word("or"):
            self.next()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Node:
        items = [self.negation()]
        while self.peek_word("and"):
            self.next()
            items.append(self.negation())
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the filter nests deeper than {MAX_DEPTH} levels")
        try:
            if self.peek_word("not"):
                self.next()
                return Not(self.negation())
            token = self.peek()
            if token.kind == "punct" and token.text == "(":
                self.next()
                node = self.expression()
                self.expect_punct(")")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def field(self) -> Field:
        token = self.next()
        if token.kind == "field":
            prefix, _, key = token.text.partition(".")
            if key.startswith("`"):
                key = key[1:-1]
            elif key.startswith('"'):
                key = _unquote(key)
            if not key:
                raise self.fail("empty key name", token)
            kind = PREFIXES[prefix.lower()]
            return self.attribute(key, token) if kind == "attribute" else Field(kind, key)
        if token.kind == "word" and token.text.lower() in PREFIXES:
            dot = self.peek()
            if dot.kind == "punct" and dot.text == ".":
                self.next()
                kind = PREFIXES[token.text.lower()]
                name = self.key_name()
                if kind == "attribute":
                    return self.attribute(name, token)
                return Field(kind, name)
        if token.kind == "word" and token.text.lower() not in KEYWORDS:
            return self.attribute(token.text, token)
        raise self.fail(
            "expected a field such as metrics.KEY, params.KEY, tags.KEY or status", token
        )

    def attribute(self, name: str, token: Token) -> Field:
        lowered = name.lower()
        if lowered not in ATTRIBUTES:
            known = ", ".join(sorted(ATTRIBUTES))
            raise FilterSyntaxError(
                f"unknown run attribute {name!r} (known: {known}; use metrics.{name}, "
                f"params.{name} or tags.{name} for logged values)",
                self.text,
                token.position,
            )
        return Field("attribute", "run_id" if lowered == "id" else lowered)

    def key_name(self) -> str:
        """A key after ``metrics.``: dotted words, or one quoted name."""
        token = self.next()
        if token.kind == "quoted":
            name = token.text[1:-1]
        elif token.kind == "string" and token.text.startswith('"'):
            name = _unquote(token.text)
        elif token.kind in ("word", "number"):
            name = token.text
            while self.peek().kind == "punct" and self.peek().text == ".":
                following = self.tokens[self.index + 1]
                if following.kind not in ("word", "number"):
                    break
                self.index += 2
                name += "." + following.text
        else:
            raise self.fail("expected a key name (use `backticks` for unusual names)", token)
        if not name:
            raise self.fail("empty key name", token)
        return name

    def comparison(self) -> Comparison:
        field = self.field()
        token = self.next()
        if token.kind == "op":
            op = {"==": "=", "<>": "!="}.get(token.text, token.text)
            return Comparison(field, op, self.literal())
        word = token.text.lower() if token.kind == "word" else ""
        if word in ("like", "ilike"):
            value = self.literal()
            if not isinstance(value, str):
                raise self.fail(f"{word} needs a quoted pattern", self.tokens[self.index - 1])
            if (len(value) - len(value.rstrip("\\"))) % 2:
                raise self.fail(f"{word} patterns cannot end with the escape character "
                                "\\ (write \\\\ for a backslash)", self.tokens[self.index - 1])
            return Comparison(field, word, value)
        if word == "in":
            self.expect_punct("(")
            values = [self.literal()]
            while self.peek().kind == "punct" and self.peek().text == ",":
                self.next()
                values.append(self.literal())
                if len(values) > MAX_IN_VALUES:
                    raise self.fail(f"an 'in' list holds at most {MAX_IN_VALUES:,} values",
                                    self.tokens[self.index - 1])
            self.expect_punct(")")
            return Comparison(field, "in", tuple(values))
        if word == "is":
            negated = self.peek_word("not")
            if negated:
                self.next()
            if not self.peek_word("null"):
                raise self.fail("expected 'null'")
            self.next()
            return Comparison(field, "is not null" if negated else "is null", None)
        if word == "not":
            raise self.fail("write 'not' before the field, e.g. not params.x in (...)", token)
        raise self.fail("expected a comparison (=, !=, <, <=, >, >=, like, in, is null)", token)

    def literal(self) -> float | str:
        token = self.next()
        if token.kind == "number":
            return float(token.text)
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower()
        raise self.fail("expected a number or a quoted string", token)


def _unquote(text: str) -> str:
    """Strip the quotes; a doubled quote or a backslash-escaped quote or backslash stands
    for itself. Other backslashes are kept, so that ``like 'a\\_b'`` can match a
    literal underscore."""
    quote = text[0]
    body = text[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(['\"\\])", r"\1", body)
