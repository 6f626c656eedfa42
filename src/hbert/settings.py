"""Typed settings: the one reader and checker behind pretraining configs, fine-tuning settings and recipes.

A group of settings is a dataclass whose fields are declared with ``setting(...)``: the default, and where it applies
the accepted choices (a tuple, or a function returning the names of a registry, so that a registered extension is
accepted at once) and the accepted range. ``assign`` sets a dotted key with its value turned into the field's type,
``check`` enforces every declared choice and range; an unknown key is refused naming the closest known one. The
messages are the same everywhere: ``key=value; accepted: ...``.

Written here rather than with a validation library: the declarations are plain dataclass fields (so ``asdict``, the
saved ``config.yaml`` and every reader of ``config.train.lr`` stay as they are), and the parts a library would take
over (turning a read value into the field's type, choices, ranges) are the short functions below; what is left
around them (``key=value`` reading, dotted keys, "did you mean", hbert's one-line messages) would remain hand-written
with a library too.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Iterable
from typing import Any

_MISSING = dataclasses.MISSING


class SettingsError(ValueError):
    pass


def setting(
    default: Any = _MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    text: bool = False,
) -> Any:
    """A dataclass field with what it accepts: ``choices`` (names, or a function giving them, e.g. a registry's
    keys), a range ``low``..``high`` (``low_open`` / ``high_open``: strictly above / below; ``high`` None:
    unbounded), ``text``: a
    value kept as written by ``key=value`` (names, folders, budgets: ``out=007`` is the folder 007, not 7)."""
    bounds = (low, high, low_open, high_open) if low is not None else None
    metadata = {"choices": choices, "range": bounds, "text": text}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def choices_of(f: dataclasses.Field) -> tuple[str, ...] | None:
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return tuple(choices() if callable(choices) else choices)


def is_section(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def fields_of(obj_or_cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj_or_cls)}


def section_types(cls) -> dict[str, type]:
    """The dataclass fields of ``cls`` that are sections (nested groups), by name, from their default factories."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not _MISSING:
            default = f.default_factory()
            if is_section(default):
                out[f.name] = type(default)
    return out


def keys_of(cls, prefix: str = "") -> list[str]:
    """Every dotted key of ``cls``: sections and their keys."""
    sections = section_types(cls)
    keys = []
    for f in dataclasses.fields(cls):
        keys.append(prefix + f.name)
        if f.name in sections:
            keys += keys_of(sections[f.name], f"{prefix}{f.name}.")
    return keys


def text_fields(cls, prefix: str = "") -> tuple[str, ...]:
    """The dotted names of the fields of ``cls`` (and its sections) that hold text: declared ``text=True``, or
    typed ``str``. ``key=value`` keeps such a value as written."""
    sections = section_types(cls)
    names: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name in sections:
            names += text_fields(sections[f.name], f"{prefix}{f.name}.")
        elif f.metadata.get("text") or isinstance(f.default, str) or f.type in (str, "str"):
            names.append(prefix + f.name)
    return tuple(names)


def did_you_mean(key: str, keys: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(value: Any, current: Any, key: str, error: type[ValueError] = SettingsError) -> Any:
    """``value`` (as read from YAML or ``key=value``) as the type of ``current``, the setting's present value; a
    value of another kind is refused naming ``key`` and the accepted kind (a whole number is never rounded:
    ``epochs=2.5`` is refused)."""
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (*_TRUE, *_FALSE):
            return value.lower() in _TRUE
        raise error(f"{key}: expected true or false, got {value!r}")
    if isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise error(f"{key}: expected an integer, got {value!r}")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise error(f"{key}: expected a number, got {value!r}")
    if isinstance(current, tuple):
        if isinstance(value, (list, tuple)) and len(value) == len(current):
            try:
                return tuple(type(c)(v) for c, v in zip(current, value))
            except (TypeError, ValueError):
                pass
        raise error(f"{key}: expected a list of {len(current)} numbers, got {value!r}")
    if isinstance(current, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise error(f"{key}: expected a list, got {value!r}")
        return list(value)
    if isinstance(current, dict):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise error(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(current, str):
        if isinstance(value, (dict, list, bool)):
            raise error(f"{key}: expected a text, got {value!r}")
        return "" if value is None else str(value)
    return value


def check_value(f: dataclasses.Field, value: Any, key: str, error: type[ValueError] = SettingsError) -> None:
    """Refuse ``value`` when ``f`` declares choices or a range that it falls outside."""
    choices = choices_of(f)
    if choices is not None and value not in choices:
        raise error(f"{key}={value!r}; accepted: {', '.join(choices)}")
    bounds = f.metadata.get("range")
    if bounds is not None:
        low, high, low_open, high_open = bounds
        too_low = value <= low if low_open else value < low
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
            kind = "a whole number" if isinstance(f.default, int) and not isinstance(f.default, bool) else "a number"
            upper = "" if high is None else f" and < {high:g}" if high_open else f" and <= {high:g}"
            raise error(f"{key}={value!r}; accepted: {kind} {bound}{upper}")


def check(obj: Any, prefix: str = "", error: type[ValueError] = SettingsError) -> None:
    """Every declared choice and range of ``obj`` and its sections."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if is_section(value):
            check(value, f"{prefix}{f.name}.", error)
        else:
            check_value(f, value, prefix + f.name, error)


def assign(obj: Any, key: str, value: Any, error: type[ValueError] = SettingsError, unknown=None) -> None:
    """Set the dotted ``key`` of ``obj`` (nested dataclasses) to ``value`` turned into the field's type. A mapping
    given for a section sets its keys one by one. ``unknown(key)`` gives the error for a key ``obj`` lacks."""
    unknown = unknown or (lambda k: error(f"unknown setting {k!r}{did_you_mean(k, keys_of(type(obj)))}"))
    parts = key.split(".")
    target = obj
    for part in parts[:-1]:
        if not is_section(target) or part not in fields_of(target):
            raise unknown(key)
        target = getattr(target, part)
    name = parts[-1]
    if not is_section(target) or name not in fields_of(target):
        raise unknown(key)
    current = getattr(target, name)
    if is_section(current):
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                assign(obj, f"{key}.{sub}", sub_value, error, unknown)
            return
        first = dataclasses.fields(current)[0].name
        raise error(f"{key} is a section; set one of its keys, e.g. {key}.{first}")
    setattr(target, name, coerce(value, current, key, error))


def load(cls, values: dict[str, Any], error: type[ValueError] = SettingsError, unknown=None, start=None):
    """A checked ``cls`` (or ``start``, modified in place) with ``values`` (dotted key -> value) assigned."""
    obj = cls() if start is None else start
    for key, value in values.items():
        assign(obj, key, value, error, unknown)
    check(obj, error=error)
    return obj
