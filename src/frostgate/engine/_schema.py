"""The JSON Schema (Draft 2020-12) of policies, rule packs and Sigma ``frostgate:`` sections.

The schema ships as package data (``schemas/rules.schema.json``) so editors and CI
pipelines can validate rule files without FrostGate, and so the shape of a rule file is
written down in a standard form rather than only in the compiler. Validation here reports
every shape problem at once (the compiler stops at the first), each at its file and line;
the compiler's semantic checks (rule order, references between rules, field/value
agreement, regex syntax) run after it, because a schema cannot express them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ._source import Path_, Problem, YamlDoc, format_path

__all__ = ["SCHEMA_RESOURCE", "Kind", "schema", "schema_errors", "schema_problems"]

SCHEMA_RESOURCE: Final = "schemas/rules.schema.json"
Kind = Literal["policy", "rulepack", "sigma_frostgate"]

#: Longest text kept from one jsonschema message (they embed the offending value).
_MAX_MESSAGE: Final = 240
_MAX_PROBLEMS: Final = 50


@cache
def schema() -> Mapping[str, Any]:
    """The packaged schema document."""
    text = resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(kind: Kind) -> Draft202012Validator:
    root = dict(schema())
    for key in ("if", "then", "else"):
        root.pop(key, None)
    root["$ref"] = f"#/$defs/{kind}"
    # The packaged schema is checked against the meta-schema by the test suite
    # (tests/rules/test_rule_files.py); doing it here cost a quarter second per start.
    return Draft202012Validator(root)


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The most specific errors: an ``anyOf`` failure is reported by its best branch."""
    if error.context:
        best = min(error.context, key=lambda e: (-len(e.absolute_path), len(e.message)))
        yield from _leaves(best)
    else:
        yield error


def _message(error: ValidationError) -> str:
    text = error.message
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return text


def schema_errors(
    instance: object, kind: Kind, *, names: object = None, prefix: Path_ = ()
) -> list[tuple[Path_, str]]:
    """Every way ``instance`` breaks the schema's ``kind``: (path to point at, message).

    The message starts with the location as the compiler writes it (``rule 'x'.when``,
    rule ids read from ``names``, default ``instance``); ``prefix`` is where ``instance``
    sits inside its file.
    """
    found: set[tuple[Path_, str]] = set()
    for top in _validator(kind).iter_errors(instance):
        for error in _leaves(top):
            path: Path_ = (*prefix, *error.absolute_path)
            line_path = path
            if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
                # point at the first unexpected key rather than at its mapping
                schema = error.schema
                allowed = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
                extra = [k for k in error.instance if k not in allowed]
                if extra:
                    line_path = (*path, extra[0])
            location = format_path(path, instance if names is None else names)
            found.add((line_path, f"{location}: {_message(error)}"))
    return sorted(found, key=lambda pm: pm[1])[:_MAX_PROBLEMS]


def schema_problems(
    doc: YamlDoc, kind: Kind, *, data: object = None, prefix: Path_ = ()
) -> list[Problem]:
    """:func:`schema_errors` of ``data`` (default: the whole file) at the lines of ``doc``."""
    instance = doc.data if data is None else data
    errors = schema_errors(instance, kind, names=doc.data, prefix=prefix)
    return sorted(doc.problem(path, message) for path, message in errors)
