"""The formula language's syntax: tokens, the abstract syntax tree, and a recursive-descent parser.

Grammar (``logic/README.md``, "Formulas", gives the meaning)::

    formula     := quantified | implication
    quantified  := QUANT VAR 'in' set ':' formula        QUANT: forall | exists | most(NUMBER)
    implication := disjunction [ '->' formula ]           (right-associative)
    disjunction := conjunction { 'or' conjunction }
    conjunction := unary { 'and' unary }
    unary       := 'not' unary | '(' formula ')' | quantified | atom
    atom        := NAME '(' arg { ',' arg } ')'           a class, a class variable, or a predicate
    set         := NAME [ '(' arg { ',' arg } ')' ]       a named set, or a row/column variable
    arg         := VAR | NUMBER | CLASS NAME

A quantifier's body extends as far to the right as possible. Errors (:class:`FormulaError`) give the
column and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

KEYWORDS = ("forall", "exists", "most", "in", "not", "and", "or")
_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op>->|[():,]))")


class FormulaError(ValueError):
    """A formula that does not parse or does not fit the image's data; the message shows where."""

    def __init__(self, text: str, position: int, message: str, *, name: Optional[str] = None) -> None:
        where = f"formula {name!r}" if name else "formula"
        pointer = " " * position + "^"
        super().__init__(f"{where}, column {position + 1}: {message}\n  {text}\n  {pointer}")
        self.position = position


#: ``error(position, message)``: a formula's error at a column of its text.
ErrorAt = Callable[[int, str], FormulaError]


@dataclass(frozen=True)
class Token:
    kind: str  # "number" | "name" | "op" | "end"
    text: str
    position: int


def tokenize(text: str, *, name: Optional[str] = None) -> List[Token]:
    tokens: List[Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FormulaError(text, start, f"unexpected character {text[start]!r}", name=name)
        kind = m.lastgroup
        tokens.append(Token(kind, m.group(kind), m.start(kind)))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- the tree --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arg:
    """A variable or class name (``text``) or a number (``value``)."""

    text: str
    value: Optional[float]
    position: int


@dataclass(frozen=True)
class SetRef:
    name: str
    args: Tuple[Arg, ...]
    position: int


@dataclass(frozen=True)
class Quantified:
    quantifier: str  # forall | exists | most
    var: str
    domain: SetRef
    body: "Node"
    position: int
    fraction: Optional[float] = None  # of most(rho)


@dataclass(frozen=True)
class Apply:
    """``name(args)``: a class atom, a class variable applied to a pixel, or a predicate."""

    name: str
    args: Tuple[Arg, ...]
    position: int


@dataclass(frozen=True)
class Not:
    operand: "Node"
    position: int


@dataclass(frozen=True)
class Binary:
    op: str  # and | or | ->
    left: "Node"
    right: "Node"
    position: int


Node = Union[Quantified, Apply, Not, Binary]


class _Parser:
    def __init__(self, text: str, name: Optional[str]) -> None:
        self.text, self.name = text, name
        self.tokens = tokenize(text, name=name)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, token: Optional[Token] = None) -> FormulaError:
        token = token or self.tok
        got = "the end of the formula" if token.kind == "end" else repr(token.text)
        return FormulaError(self.text, token.position, f"{message}, got {got}", name=self.name)

    def take(self, text: str, what: str) -> Token:
        if self.tok.text != text or self.tok.kind == "end":
            raise self.error(f"expected {what}")
        tok = self.tok
        self.i += 1
        return tok

    def name_token(self, what: str) -> Token:
        if self.tok.kind != "name" or self.tok.text in KEYWORDS:
            raise self.error(f"expected {what}")
        tok = self.tok
        self.i += 1
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("expected a formula")
        node = self.formula()
        if self.tok.kind != "end":
            raise self.error("expected 'and', 'or', '->' or the end of the formula")
        return node

    def formula(self) -> Node:
        if self.tok.text in ("forall", "exists", "most"):
            return self.quantified()
        return self.implication()

    def quantified(self) -> Node:
        q = self.tok
        self.i += 1
        fraction = None
        if q.text == "most":
            self.take("(", "'(' after 'most' (most(0.8) p in S: ...)")
            num = self.tok
            if num.kind != "number":
                raise self.error("expected the fraction of 'most', a number in (0, 1]")
            fraction = float(num.text)
            if not 0 < fraction <= 1:
                raise FormulaError(self.text, num.position, f"the fraction of 'most' must be in (0, 1], got {num.text}", name=self.name)
            self.i += 1
            self.take(")", "')' after the fraction of 'most'")
        var = self.name_token(f"a variable after {q.text!r}")
        self.take("in", f"'in' after the variable {var.text!r}")
        domain = self.set_ref()
        self.take(":", f"':' after the set of {var.text!r}")
        body = self.formula()
        return Quantified(q.text, var.text, domain, body, q.position, fraction)

    def implication(self) -> Node:
        left = self.disjunction()
        if self.tok.text == "->" and self.tok.kind == "op":
            op = self.tok
            self.i += 1
            return Binary("->", left, self.formula(), op.position)
        return left

    def disjunction(self) -> Node:
        return self._left_assoc("or", self.conjunction)

    def conjunction(self) -> Node:
        return self._left_assoc("and", self.unary)

    def _left_assoc(self, op: str, operand) -> Node:
        """``operand { op operand }``, grouped from the left."""
        node = operand()
        while self.tok.text == op and self.tok.kind == "name":
            position = self.tok.position
            self.i += 1
            node = Binary(op, node, operand(), position)
        return node

    def unary(self) -> Node:
        tok = self.tok
        if tok.text == "not" and tok.kind == "name":
            self.i += 1
            return Not(self.unary(), tok.position)
        if tok.text == "(" and tok.kind == "op":
            self.i += 1
            node = self.formula()
            self.take(")", "')'")
            return node
        if tok.text in ("forall", "exists", "most") and tok.kind == "name":
            return self.quantified()
        name = self.name_token("a class atom such as dog(p), a predicate, 'not', '(' or a quantifier")
        if self.tok.text != "(":
            raise self.error(f"expected '(' after {name.text!r} (atoms are applied to variables: {name.text}(p))")
        return Apply(name.text, self.args(), name.position)

    def args(self) -> Tuple[Arg, ...]:
        self.take("(", "'('")
        out = [self.arg()]
        while self.tok.text == ",":
            self.i += 1
            out.append(self.arg())
        self.take(")", "',' or ')'")
        return tuple(out)

    def arg(self) -> Arg:
        tok = self.tok
        if tok.kind == "number":
            self.i += 1
            return Arg(tok.text, float(tok.text), tok.position)
        name = self.name_token("a variable, class name or number")
        return Arg(name.text, None, name.position)

    def set_ref(self) -> SetRef:
        name = self.name_token("a set (pixels, boxes, rows(b), N8(p), classes, ...)")
        args: Tuple[Arg, ...] = ()
        if self.tok.text == "(":
            args = self.args()
        return SetRef(name.text, args, name.position)


def parse(text: str, *, name: Optional[str] = None) -> Node:
    """The syntax tree of ``text``; :class:`FormulaError` pointing at the first error."""
    return _Parser(text, name).parse()
