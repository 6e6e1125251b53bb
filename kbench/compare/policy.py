"""Gating policies: how much slower each benchmark may get, read from TOML or JSON files."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from kbench import _validate
from kbench.compare.matrix import ComparisonError
from kbench.results import listing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only; pyproject declares tomli there
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None


class PolicyError(ComparisonError):
    """A gating policy that is malformed or names unknown benchmarks; the message names
    the file and the bad key or value."""


def check_slowdown(name: str, value, where: str = "",
                   error: type[Exception] = ComparisonError) -> float:
    """An allowed slowdown: a fraction of throughput strictly between 0 and 1."""
    return _validate.check_fraction(
        name, value, error=error, where=where,
        what="a number strictly between 0 and 1 (a fraction of throughput, 0.10 = 10% slower)")


# Version of the policy file format ("schema_version", optional in a file).
# History:
#   1: max_slowdown (default) and [benchmarks."<name or glob>"] max_slowdown.
POLICY_SCHEMA_VERSION = 1
SUPPORTED_POLICY_SCHEMA_VERSIONS = (1,)
_POLICY_KEYS = ("schema_version", "max_slowdown", "benchmarks")
_RULE_KEYS = ("max_slowdown",)
_WILDCARDS = ("*", "?")


def _is_glob(pattern: str) -> bool:
    return any(w in pattern for w in _WILDCARDS)


def _glob_matches(key: str, pattern: str) -> bool:
    """fnmatch with ``*`` and ``?`` only: pytest puts parameters in [brackets], which
    fnmatch would read as a character class, so brackets match themselves."""
    escaped = pattern.replace("[", "\0").replace("]", "[]]").replace("\0", "[[]")
    return fnmatch.fnmatchcase(key, escaped)


@dataclasses.dataclass(frozen=True)
class PolicyRule:
    """A per-benchmark allowed slowdown: ``pattern`` is a benchmark key or a glob."""

    pattern: str
    max_slowdown: float

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise PolicyError(f"a policy rule needs a non-empty benchmark name or glob, "
                              f"got {self.pattern!r}")
        check_slowdown("max_slowdown", self.max_slowdown, f"benchmarks.{self.pattern!r}",
                        PolicyError)

    def matches(self, key: str) -> bool:
        return key == self.pattern or (_is_glob(self.pattern) and _glob_matches(key, self.pattern))


@dataclasses.dataclass(frozen=True)
class Policy:
    """How much slower each benchmark may get before the gate fails.

    Which rule applies to a benchmark: a rule whose pattern is exactly its key
    wins; otherwise the first glob rule (in file order) that matches it;
    otherwise ``max_slowdown``; otherwise the gate's ``max_slowdown`` argument.
    Globs use ``*`` (any characters) and ``?`` (one character); brackets are
    literal, as in pytest's ``test_x[cpu-b64]``.

    Attributes:
        rules: per-benchmark rules, in file order.
        max_slowdown: the file's default, or None to use the gate's argument.
        source: the file it came from, for error messages.
    """

    rules: tuple[PolicyRule, ...] = ()
    max_slowdown: float | None = None
    source: str = "<policy>"
    schema_version: int = POLICY_SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        for rule in self.rules:
            if not isinstance(rule, PolicyRule):
                raise PolicyError(f"{self.source}: rules must be PolicyRule, got {rule!r}")
        patterns = [rule.pattern for rule in self.rules]
        duplicates = sorted({p for p in patterns if patterns.count(p) > 1})
        if duplicates:
            raise PolicyError(f"{self.source}: benchmark pattern(s) given twice: {duplicates}")
        if self.max_slowdown is not None:
            check_slowdown("max_slowdown", self.max_slowdown, self.source, PolicyError)
        _validate.check_version("schema_version", self.schema_version,
                                SUPPORTED_POLICY_SCHEMA_VERSIONS, error=PolicyError,
                                where=self.source)

    def rule_for(self, key: str) -> PolicyRule | None:
        """The rule that applies to ``key`` (exact name first, then the first matching glob)."""
        exact = next((r for r in self.rules if r.pattern == key), None)
        if exact is not None:
            return exact
        return next((r for r in self.rules if _is_glob(r.pattern) and r.matches(key)), None)

    def allowed_slowdown(self, key: str, default: float) -> float:
        rule = self.rule_for(key)
        if rule is not None:
            return rule.max_slowdown
        return default if self.max_slowdown is None else self.max_slowdown

    def check_keys(self, keys: Sequence[str]) -> None:
        """PolicyError for a rule that matches none of ``keys`` (a typo, or a stale name)."""
        for rule in self.rules:
            if not any(rule.matches(key) for key in keys):
                close = difflib.get_close_matches(rule.pattern, list(keys), n=3)
                hint = f"; did you mean {close}?" if close else ""
                raise PolicyError(
                    f"{self.source}: benchmarks.{rule.pattern!r} matches no benchmark in the "
                    f"compared runs{hint} (they have {listing(list(keys))})")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _read_policy_document(path: str) -> Mapping:
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".toml", ".json"):
        raise PolicyError(f"{path}: a policy file must end in .toml or .json, got {suffix!r}")
    if suffix == ".toml" and tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise PolicyError(f"{path}: reading TOML needs Python >= 3.11 or the tomli package; "
                          "install tomli or write the policy as JSON")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise PolicyError(f"{path}: cannot read policy file: {err.strerror or err}") from err
    try:
        text = raw.decode("utf-8")
        if suffix == ".toml":
            return tomllib.loads(text)
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as err:  # TOMLDecodeError, JSONDecodeError
        raise PolicyError(f"{path}: not valid {suffix[1:].upper()}: {err}") from err


def _unknown_keys(table: Mapping, allowed: Sequence[str]) -> list[str]:
    return [key for key in table if key not in allowed]


def _rules_from(benchmarks, source: str) -> tuple[PolicyRule, ...]:
    if not isinstance(benchmarks, Mapping):
        raise PolicyError(f"{source}: benchmarks must be a table of benchmark name or glob -> "
                          f"{{max_slowdown = ...}}, got {benchmarks!r:.80}")
    rules = []
    for pattern, entry in benchmarks.items():
        where = f"{source}: benchmarks.{pattern!r}"
        if not isinstance(entry, Mapping):
            raise PolicyError(f"{where} must be a table with max_slowdown, got {entry!r:.80}")
        unknown = _unknown_keys(entry, _RULE_KEYS)
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {unknown} (expected {list(_RULE_KEYS)})")
        if "max_slowdown" not in entry:
            raise PolicyError(f"{where} has no max_slowdown")
        if not pattern:
            raise PolicyError(f"{where}: a benchmark name or glob must not be empty")
        check_slowdown("max_slowdown", entry["max_slowdown"], where, PolicyError)
        rules.append(PolicyRule(pattern, float(entry["max_slowdown"])))
    return tuple(rules)


def policy_from_mapping(document: Mapping, source: str = "<policy>") -> Policy:
    """A Policy from a parsed policy document (what load_policy reads from a file)."""
    if not isinstance(document, Mapping):
        raise PolicyError(f"{source}: a policy must be a table/object, got {document!r:.80}")
    unknown = _unknown_keys(document, _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"{source}: unknown key(s) {unknown} (expected {list(_POLICY_KEYS)})")
    default = document.get("max_slowdown")
    if default is not None:
        check_slowdown("max_slowdown", default, source, PolicyError)
        default = float(default)
    version = document.get("schema_version", POLICY_SCHEMA_VERSION)
    return Policy(rules=_rules_from(document.get("benchmarks", {}), source),
                  max_slowdown=default, source=source, schema_version=version)


def load_policy(path: str | os.PathLike) -> Policy:
    """Read a gating policy from a ``.toml`` or ``.json`` file, e.g.::

        max_slowdown = 0.10
        [benchmarks."test_prefetch[cpu-b64-fit-prefetch=off map=off]"]
        max_slowdown = 0.25
        [benchmarks."test_execution_throughput[*-xla]"]
        max_slowdown = 0.30

    (JSON: ``{"max_slowdown": 0.1, "benchmarks": {"<name>": {"max_slowdown": 0.25}}}``.)
    See :class:`Policy` for which rule applies to a benchmark. Errors
    (PolicyError) name the file and the bad key or value.
    """
    path = os.fspath(path)
    return policy_from_mapping(_read_policy_document(path), source=path)
