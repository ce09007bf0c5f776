"""Rule files as YAML with positions: every problem is reported as ``file:line: reason``.

``yaml.safe_load`` forgets where things were, so an operator told "rules[7].when.all[2]
is wrong" has to count. Here a file is composed into YAML nodes first (which carry their
marks), constructed with the safe constructor, and walked once to record the line of every
mapping key and sequence item under its JSON path. A problem found later, by the JSON
Schema (which reports a path) or by the compiler (which reports a ``where`` such as
``rule 'x'.when.all[1].value``), is mapped back to the deepest line known on that path.

Three things ``safe_load`` lets through are refused here, because each makes a file mean
something other than what it says:

* a key repeated in one mapping (YAML keeps the last one silently);
* more than one YAML document in a file (only the first would be read);
* a document that expands (through ``&anchor``/``*alias`` reuse) to more than
  ``MAX_NODES`` nodes: a "billion laughs" file would otherwise exhaust memory when
  canonicalized for the policy fingerprint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from ._conditions import PolicyError

__all__ = [
    "MAX_NODES",
    "Path_",
    "Problem",
    "RuleFileError",
    "YamlDoc",
    "format_path",
    "load_yaml",
    "parse_where",
]

#: Most nodes a rule file may expand to (the default policy has about 600).
MAX_NODES: Final = 100_000

Path_ = tuple[str | int, ...]

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One reason a rule file is refused, located at a line of that file."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RuleFileError(PolicyError):
    """A rule file (policy, rule pack or Sigma rule) was refused; ``problems`` says where
    and why, one line each, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """The safe loader, refusing a key repeated in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                fresh = key not in seen
            except TypeError:  # an unhashable key: the base constructor says so
                break
            if not fresh:
                raise _DuplicateKeyError(
                    None, None, f"duplicate key {key!r} in one mapping", key_node.start_mark
                )
            seen.add(key)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


@dataclass(frozen=True, slots=True)
class YamlDoc:
    """A parsed rule file: the data, and the line of every key and item by JSON path."""

    origin: str
    data: Any
    lines: Mapping[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line of the deepest known element on ``path`` (1 for the document)."""
        current = tuple(path)
        while current:
            line = self.lines.get(current)
            if line is not None:
                return line
            current = current[:-1]
        return self.lines.get((), 1)

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        return Problem(self.origin, self.line_of(path), message)

    def locate(self, error: PolicyError) -> Problem:
        """A compiler error (``where: reason``) as a problem at the line ``where`` names."""
        if isinstance(error, RuleFileError) and error.problems:
            return error.problems[0]
        message = str(error)
        return self.problem(parse_where(message, self.data), message)


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int], budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            child = (*path, key)
            lines.setdefault(child, key_node.start_mark.line + 1)
            _walk(value_node, child, lines, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            lines.setdefault(child, item.start_mark.line + 1)
            _walk(item, child, lines, budget)


class _TooLarge(Exception):
    pass


def load_yaml(data: bytes | str, origin: str) -> YamlDoc:
    """Parse one YAML document with the safe loader, recording lines; RuleFileError if
    the text is not YAML, holds several documents, repeats a key or expands too far."""
    loader = _Loader(data)
    try:
        try:
            node = loader.get_node() if loader.check_node() else None
            if node is not None and loader.check_node():
                extra = loader.get_node()
                line = extra.start_mark.line + 1 if extra is not None else 1
                raise RuleFileError(
                    [
                        Problem(
                            origin,
                            line,
                            "a second YAML document: a rule file holds exactly one "
                            "(Sigma rule collections and 'action: global' are not supported)",
                        )
                    ]
                )
            if node is None:
                return YamlDoc(origin, None, {(): 1})
            lines: dict[Path_, int] = {(): node.start_mark.line + 1}
            try:
                _walk(node, (), lines, [MAX_NODES])
            except _TooLarge:
                raise RuleFileError(
                    [
                        Problem(
                            origin,
                            1,
                            f"the document expands to more than {MAX_NODES} nodes "
                            "(too large, or an alias bomb)",
                        )
                    ]
                ) from None
            value = loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            reason = exc.problem or exc.context or "unreadable"
            raise RuleFileError([Problem(origin, line, f"not valid YAML: {reason}")]) from None
        except yaml.YAMLError as exc:
            raise RuleFileError([Problem(origin, 1, f"not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return YamlDoc(origin, value, lines)


# --------------------------------------------------------------------------- paths

_RULE_PREFIX: Final = re.compile(r"rule '([^']*)'")
_TOKEN: Final = re.compile(r"\.([^.\[\]:]+)|\[(\d+)\]")
_ROOTS: Final = frozenset({"policy", "pack"})


def parse_where(message: str, data: object) -> Path_:
    """The JSON path a compiler message's ``where`` prefix names, as far as it can be read.

    ``rule 'brute_force'.when.all[1].value: ...`` becomes
    ``("rules", 0, "when", "all", 1, "value")`` (the rule found by id in ``data``); a
    message without a readable location gives ``()`` (the document).
    """
    where, sep, _ = message.partition(": ")
    if not sep or " " in where.replace("rule '", "", 1):
        return ()
    path: list[str | int] = []
    rest = where
    match = _RULE_PREFIX.match(rest)
    if match is not None:
        index = _rule_index(data, match.group(1))
        if index is None:
            return ()
        path += ["rules", index]
        rest = rest[match.end() :]
    else:
        rest = "." + rest
    for token in _tokens(rest):
        if token is None:
            break
        path.append(token)
    if path and path[0] in _ROOTS:
        path.pop(0)
    return tuple(path)


def _tokens(text: str) -> Iterator[str | int | None]:
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            yield None
            return
        name, index = match.groups()
        yield int(index) if index is not None else name
        pos = match.end()


def _rule_index(data: object, rule_id: str) -> int | None:
    rules = data.get("rules") if isinstance(data, Mapping) else None
    if not isinstance(rules, list):
        return None
    for i, rule in enumerate(rules):
        if isinstance(rule, Mapping) and rule.get("id") == rule_id:
            return i
    return None


def format_path(path: Sequence[str | int], data: object) -> str:
    """A JSON path as the compiler writes locations: ``rule 'x'.when.all[1]``."""
    parts = list(path)
    text = ""
    if len(parts) >= 2 and parts[0] == "rules" and isinstance(parts[1], int):
        rules = data.get("rules") if isinstance(data, Mapping) else None
        if isinstance(rules, list) and parts[1] < len(rules):
            rule = rules[parts[1]]
            rule_id = rule.get("id") if isinstance(rule, Mapping) else None
            if isinstance(rule_id, str) and _RULE_PREFIX.fullmatch(f"rule '{rule_id}'"):
                text = f"rule '{rule_id}'"
                parts = parts[2:]
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"
