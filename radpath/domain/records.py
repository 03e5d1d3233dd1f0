"""Dataclasses with a JSON form: the one codec for what radpath writes down as JSON.

A :class:`Record` is a dataclass whose fields are JSON values, enums, other records, or
lists, dicts and optionals of those. ``to_json`` writes every field (``None`` included,
so a reader sees what was not decided); ``from_json`` builds the record back from its
type hints and refuses keys it does not know, so a renamed field fails when it is read,
not three stages later.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A JSON value does not fit the record it is read into."""


class Record:
    """Base of the records; subclasses are dataclasses."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: _dump(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        return _load(cls, data, cls.__name__)


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    if isinstance(value, Mapping):
        return {str(_dump(k)): _dump(v) for k, v in value.items()}
    return value


def _load(kind: Any, value: Any, where: str) -> Any:
    origin = get_origin(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        problems = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _load(option, value, where)
            except RecordError as err:
                problems.append(str(err))
        raise RecordError("; ".join(problems))
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, found {type(value).__name__}")
        (item,) = get_args(kind)[:1] or (Any,)
        items = [_load(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, found {type(value).__name__}")
        key_kind, item = get_args(kind) or (str, Any)
        return {_load(key_kind, k, where): _load(item, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Record):
        return _load_record(kind, value, where)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            raise RecordError(f"{where}: {value!r} is not one of {', '.join(m.value for m in kind)}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(kind, type) and not (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        raise RecordError(f"{where}: expected {kind.__name__}, found {type(value).__name__}")
    return value


@functools.cache
def _shape(kind: type[Record]) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """The record's field types and init fields (worked out once: an index loads thousands)."""
    return get_type_hints(kind), {f.name: f for f in dataclasses.fields(kind) if f.init}  # type: ignore[arg-type]


def _load_record(kind: type[R], value: Any, where: str) -> R:
    if not isinstance(value, dict):
        raise RecordError(f"{where}: expected an object, found {type(value).__name__}")
    hints, fields = _shape(kind)
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {', '.join(unknown)}")
    missing = [name for name, f in fields.items() if name not in value
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
    return kind(**{name: _load(hints[name], v, f"{where}.{name}") for name, v in value.items()})
