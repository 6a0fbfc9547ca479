"""Stage: load. YAML text, bytes or a file -> a frozen model, with every problem located.

Called by `gcloudctl.pipeline` (requests, platform catalog, agency registry, rulebooks) and
`gcloudctl.validate`. It reads at most the one file it is given and nothing else: no network,
no environment, no clock.

How: the YAML is *composed* (never constructed by PyYAML) into a node tree; this module
builds plain Python values from the nodes itself, which lets it refuse what a request never
needs (tags beyond the YAML core schema, anchors, aliases, merge keys, duplicate keys, deep
nesting, huge files) and keep a map from every field path to its line and column. Pydantic
errors are then mapped back to those positions and rewritten in plain words. Every problem
found is reported at once as a `Problem`; the caller gets `errors.InvalidInput(problems)`.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar, Union

import yaml
import yaml.composer
import yaml.constructor
import yaml.resolver
from pydantic import BaseModel, ValidationError

from gcloudctl.errors import InvalidInput, Problem
from gcloudctl.i18n import gettext as _

MAX_BYTES = 1024 * 1024  # a request is a few KiB; anything near this is a mistake or an attack
MAX_DEPTH = 32
MAX_NODES = 100_000

Source = Union[str, bytes, Path]
Loc = tuple[Union[str, int], ...]
M = TypeVar("M", bound=BaseModel)

_CORE = "tag:yaml.org,2002:"
_MAP_TAG, _SEQ_TAG, _MERGE_TAG = f"{_CORE}map", f"{_CORE}seq", f"{_CORE}merge"


# --------------------------------------------------------------------------- paths, positions

def format_path(loc: Iterable[str | int]) -> str:
    """('spec', 'networks', 1, 'cidr') -> 'spec.networks[1].cidr'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def parent_path(path: str) -> str | None:
    """'spec.networks[1].cidr' -> 'spec.networks[1]' -> 'spec.networks' -> 'spec' -> ''."""
    if not path:
        return None
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


@dataclass
class Positions:
    """Where each field path of one document is: value positions and, for mapping entries,
    the key's position (unknown fields point at the key). 1-based line and column."""

    filename: str = "<input>"
    values: dict[str, tuple[int, int]] = field(default_factory=dict)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: str, *, key: bool = False) -> tuple[int, int] | None:
        """The position of *path*, else of its nearest ancestor that has one."""
        current: str | None = path
        if key and path in self.keys:
            return self.keys[path]
        while current is not None:
            if current in self.values:
                return self.values[current]
            current = parent_path(current)
        return None

    def place(self, problem: Problem, *, key: bool = False) -> Problem:
        """The problem with this document's file name and its path's position filled in."""
        where = self.locate(problem.path, key=key) if problem.line is None else (problem.line, problem.column)
        line, column = where if where else (None, None)
        return Problem(path=problem.path, message=problem.message, file=self.filename, line=line,
                       column=column, hint=problem.hint, rule=problem.rule)


@dataclass(frozen=True)
class Loaded(typing.Generic[M]):
    """A loaded document with the positions its validation problems can be placed by."""

    model: M
    positions: Positions


# --------------------------------------------------------------------------- reading text

def _read(source: Source, filename: str | None) -> tuple[bytes | str, str]:
    if isinstance(source, Path):
        name = filename or str(source)
        try:
            size = source.stat().st_size
            if size > MAX_BYTES:
                raise InvalidInput([_too_big(size, name)])
            return source.read_bytes(), name
        except OSError as exc:
            raise InvalidInput([Problem(path="", file=name, message=_("cannot read file: {reason}", reason=exc.strerror or exc))]) from None
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), filename or "<input>"
    if isinstance(source, str):
        return source, filename or "<input>"
    raise TypeError(f"source must be str, bytes or pathlib.Path, not {type(source).__name__}")


def _too_big(size: int, filename: str) -> Problem:
    return Problem(path="", file=filename, line=1, column=1,
                   message=_("file is {size} bytes; the limit is {limit} (1 MiB)", size=size, limit=MAX_BYTES),
                   hint=_("a request is a few KiB; check that this is the right file"))


# What the YAML reader refuses (C0/C1 controls except tab, newlines and NEL; surrogates; non-characters).
_NOT_YAML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def _decode(data: bytes | str, filename: str) -> str:
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise InvalidInput([_too_big(size, filename)])
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            head = data[: exc.start]
            line = head.count(b"\n") + 1
            column = len(head[head.rfind(b"\n") + 1:].decode("utf-8", "replace")) + 1
            raise InvalidInput([Problem(
                path="", file=filename, line=line, column=column,
                message=_("not UTF-8: byte 0x{byte} cannot be decoded", byte=format(data[exc.start], "02x")),
                hint=_("save the file as UTF-8 (Vietnamese text is fine in UTF-8)"))]) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _NOT_YAML_CHARS.search(text)
    if bad:
        head = text[: bad.start()]
        raise InvalidInput([Problem(
            path="", file=filename, line=head.count("\n") + 1, column=bad.start() - (head.rfind("\n") + 1) + 1,
            message=_("control character U+{code} is not allowed in YAML", code=format(ord(bad.group()), "04X")),
            hint=_("remove it (was the file saved by a binary tool?)"))])
    return text


# --------------------------------------------------------------------------- composing

_NO_STEP = object()


class _Abort(Exception):
    """Stop composing: the problems collected so far are all that can be said."""


try:  # libyaml scans and parses ~10x faster; the composing below stays in Python either way
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.reader import Reader as _Reader
    from yaml.scanner import Scanner as _Scanner
    from yaml.parser import Parser as _PyParser

    class _Parser(_Reader, _Scanner, _PyParser):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            _Reader.__init__(self, stream)
            _Scanner.__init__(self)
            _PyParser.__init__(self)


class _Composer(yaml.composer.Composer, yaml.resolver.Resolver, _Parser):
    """Composer (YAML core-schema resolution) that refuses anchors and aliases and bounds
    nesting depth and size while composing; it never constructs Python objects."""

    def __init__(self, text: str, problems: list[Problem], filename: str):
        _Parser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._problems = problems
        self._filename = filename
        self._path: list[Any] = []  # key or index per level being composed (_NO_STEP: root, keys)
        self._nodes = 0

    def _refuse(self, mark: Any, message: str, hint: str, *, stop: bool = False) -> None:
        path = format_path(step for step in self._path if step is not _NO_STEP)
        self._problems.append(Problem(path=path, file=self._filename, line=mark.line + 1, column=mark.column + 1,
                                      message=message, hint=hint))
        if stop:
            raise _Abort()

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        # index: None for the root and for mapping keys, the key node for values, an int in sequences
        self._path.append(index.value if isinstance(index, yaml.ScalarNode) else
                          index if isinstance(index, int) and parent is not None else _NO_STEP)
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                self._refuse(event.start_mark, _("alias *{name} is not allowed", name=event.anchor),
                             _("write the value out in full; anchors and aliases are refused (no alias bombs)"),
                             stop=True)
            if getattr(event, "anchor", None) is not None:
                self._refuse(event.start_mark, _("anchor &{name} is not allowed", name=event.anchor),
                             _("write each value out in full; anchors and aliases are refused"))
            self._nodes += 1
            if self._nodes > MAX_NODES:
                self._refuse(event.start_mark, f"more than {MAX_NODES} YAML nodes", "split the document", stop=True)
            if len(self._path) > MAX_DEPTH:
                self._refuse(event.start_mark, _("nesting deeper than {count} levels", count=MAX_DEPTH),
                             _("a request is only a few levels deep; check the indentation"), stop=True)
            return super().compose_node(parent, index)
        finally:
            self._path.pop()


def _compose(text: str, filename: str) -> tuple[yaml.Node | None, list[Problem]]:
    problems: list[Problem] = []
    loader = _Composer(text, problems, filename)
    try:
        root = loader.get_single_node()
    except _Abort:
        return None, problems
    except yaml.composer.ComposerError as exc:
        if "expected a single document" in str(exc):
            mark = exc.problem_mark
            problems.append(Problem(path="", file=filename, line=mark.line + 1, column=mark.column + 1,
                                    message=_("more than one YAML document ('---') in the file"),
                                    hint=_("put one request per file")))
            return None, problems
        problems.append(_syntax_problem(exc, filename, text))
        return None, problems
    except yaml.MarkedYAMLError as exc:
        problems.append(_syntax_problem(exc, filename, text))
        return None, problems
    except yaml.YAMLError as exc:  # e.g. ReaderError: unprintable characters
        problems.append(Problem(path="", file=filename, line=getattr(exc, "line", None), message=f"YAML error: {exc}"))
        return None, problems
    except RecursionError:
        problems.append(Problem(path="", file=filename, message=f"nesting deeper than {MAX_DEPTH} levels"))
        return None, problems
    finally:
        getattr(loader, "dispose", lambda: None)()
    if root is None and not problems:
        problems.append(_empty_problem(filename))
    return root, problems


def _empty_problem(filename: str) -> Problem:
    return Problem(path="", file=filename, line=1, column=1, message=_("the document is empty"),
                   hint=_("a document starts with 'apiVersion: gcloud.gov.vn/v1' and its 'kind'"))


def _syntax_problem(exc: yaml.MarkedYAMLError, filename: str, text: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    hint = _("check the indentation and quoting around this position")
    if "\t" in (what or "") or "tab" in (what or ""):
        hint = _("YAML indentation must use spaces, not tabs")
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    lines = text.split("\n")
    if line is not None and line > len(lines):  # libyaml puts "end of stream" past a last line without newline
        line, column = len(lines), len(lines[-1]) + 1
    return Problem(path="", file=filename, line=line, column=column, message=_("YAML syntax error: {what}", what=what), hint=hint)


# --------------------------------------------------------------------------- building values

_constructor = yaml.constructor.SafeConstructor()
_SCALAR_BUILDERS = {
    f"{_CORE}str": lambda node: node.value,
    f"{_CORE}int": _constructor.construct_yaml_int,
    f"{_CORE}float": _constructor.construct_yaml_float,
    f"{_CORE}bool": _constructor.construct_yaml_bool,
    f"{_CORE}null": _constructor.construct_yaml_null,
    f"{_CORE}timestamp": _constructor.construct_yaml_timestamp,
}


class _Builder:
    """Plain Python values from a node tree, recording positions and refusing non-core YAML."""

    def __init__(self, filename: str):
        self.positions = Positions(filename=filename)
        self.problems: list[Problem] = []

    def _problem(self, node: yaml.Node, loc: Loc, message: str, hint: str) -> None:
        self.problems.append(Problem(path=format_path(loc), file=self.positions.filename,
                                     line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                                     message=message, hint=hint))

    def build(self, node: yaml.Node, loc: Loc = ()) -> Any:
        self.positions.values[format_path(loc)] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._problem(node, loc, f"YAML tag {_short_tag(node.tag)} is not allowed", "remove the tag")
            return [self.build(item, loc + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        builder = _SCALAR_BUILDERS.get(node.tag)
        if builder is None:
            self._problem(node, loc, f"YAML tag {_short_tag(node.tag)} is not allowed",
                          "only plain YAML values are accepted (strings, numbers, booleans, null, dates); "
                          "remove the tag")
            return None
        try:
            return builder(node)
        except (ValueError, OverflowError, yaml.constructor.ConstructorError):
            if node.tag == f"{_CORE}timestamp":
                self._problem(node, loc, f"{node.value[:40]!r} is not a valid date",
                              'write a real date and time with its zone, e.g. "2026-12-31T00:00:00+07:00"')
            else:
                self._problem(node, loc, f"cannot read {node.value[:40]!r} as {_short_tag(node.tag)}",
                              "quote the value to make it a string")
            return None

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict:
        if node.tag != _MAP_TAG:
            self._problem(node, loc, f"YAML tag {_short_tag(node.tag)} is not allowed", "remove the tag")
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._problem(key_node, loc, "merge keys ('<<') are not allowed",
                              "write the fields out in full")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, loc, "a mapping key must be a plain value, not a list or mapping",
                              "check the indentation")
                continue
            key = self._scalar(key_node, loc)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                key = key_node.value  # 'yes:', '1.5:', '~:' as keys mean their text
            child = loc + (key,)
            path = format_path(child)
            if key in result:
                first = self.positions.keys.get(path, (None, None))
                self._problem(key_node, child, f"duplicate key '{key}' (first at line {first[0]})",
                              "each field may appear once; remove one of them")
                continue
            self.positions.keys[path] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, child)
        return result


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


# --------------------------------------------------------------------------- pydantic errors

_PATTERN_WORDS = {
    r"^[a-z]([a-z0-9-]{1,38})[a-z0-9]$": "lowercase letters, digits and '-', 3 to 40 characters, "
                                         "starting with a letter and not ending with '-'",
    r"^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$": "lowercase letters, digits and '-', at most 24 characters, "
                                          "starting with a letter and not ending with '-'",
    r"^[A-Z][A-Z0-9]{1,9}$": "an agency code: 2 to 10 capital letters or digits, e.g. BYT",
    r"^[a-z0-9][a-z0-9._-]{0,63}$": "a user name: lowercase letters, digits, '.', '_' or '-', e.g. nguyen.van.a",
    r"^[A-Za-z][A-Za-z0-9._-]{0,62}$": "a label key: a letter, then letters, digits, '.', '_' or '-'",
    r"^[A-Za-z0-9._ -]*$": "letters, digits, spaces, '.', '_' or '-'",
    r"^[a-z][a-z0-9-]{0,15}$": "a zone name: lowercase letters, digits and '-', at most 16 characters",
    r"^\d{1,5}(-\d{1,5})?$": 'a port "443" or a range "8000-8080"',
    r"^[a-z][a-z0-9-]{0,31}$": "lowercase letters, digits and '-', starting with a letter",
}

_TYPE_WORDS = {
    "string_type": "a string", "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number", "bool_type": "true or false", "bool_parsing": "true or false",
    "float_type": "a number", "float_parsing": "a number", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "datetime_type": "a date-time",
    "datetime_parsing": 'a date-time like "2026-12-31T00:00:00+07:00"',
    "datetime_from_date_parsing": 'a date-time like "2026-12-31T00:00:00+07:00"',
    "ip_v4_network": "an IPv4 network like 10.40.1.0/24", "ip_v4_address": "an IPv4 address like 10.0.0.53",
}


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Annotated/Optional/Union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def model_at(model_cls: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that describes the value at *loc* (None if not a model)."""
    current: list[Any] = [model_cls]
    for part in loc:
        following: list[Any] = []
        for ann in current:
            origin = typing.get_origin(ann)
            if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(part, str):
                info = ann.model_fields.get(part)
                if info is not None:
                    following += _unwrap(info.annotation)
            elif origin is list and isinstance(part, int):
                following += _unwrap(typing.get_args(ann)[0])
            elif origin is dict:
                following += _unwrap(typing.get_args(ann)[1])
        current = following
    for ann in current:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
    return None


def _data_loc(data: Any, loc: Loc) -> tuple[Loc, Loc]:
    """Split a pydantic loc into the part that exists in *data* and the rest (union tags,
    missing field names, '[key]')."""
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            return loc[:i], loc[i:]
    return loc, ()


@dataclass(frozen=True)
class _Error:
    """One pydantic error, with its location split into the part present in the data and the rest."""

    kind: str
    loc: Loc
    rest: Loc  # union branch tags, a missing field's name, "[key]"
    value: Any
    ctx: dict
    msg: str
    model_cls: type[BaseModel]


@dataclass(frozen=True)
class _Words:
    message: str
    hint: str | None = None
    at_key: bool = False  # the problem is the key (unknown field, bad label key), not the value
    loc: Loc | None = None  # where the problem is, when not where the error is


def _missing(e: _Error) -> _Words:
    if not e.rest:
        return _fallback(e)
    name = e.rest[0]
    model = model_at(e.model_cls, e.loc)
    info = model.model_fields.get(name) if model is not None else None
    return _Words(_("missing required field '{name}'", name=name), hint=info.description if info else None,
                  loc=e.loc + (name,))


def _unknown(e: _Error) -> _Words:
    name = str(e.loc[-1]) if e.loc else "?"
    model = model_at(e.model_cls, e.loc[:-1])
    fields = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6) or [f for f in fields if f.lower() == name.lower()]
    hint = (_("did you mean '{name}'?", name=close[0]) if close
            else _("fields here: {names}", names=", ".join(fields)) if fields else None)
    return _Words(_("unknown field '{name}'", name=name), hint=hint, at_key=True)


_KINDS = ("TenantRequest", "PlatformCatalog", "AgencyRegistry", "Rulebook")


def _literal(e: _Error) -> _Words:
    hint = None
    if e.loc == ("kind",) and e.value in _KINDS:
        hint = _("this file is a {found}, not a {expected}", found=e.value, expected=e.model_cls.__name__)
    return _Words(_("must be {expected}, not {found}", expected=e.ctx.get("expected", ""), found=_describe(e.value)),
                  hint=hint)


def _pattern(e: _Error) -> _Words:
    pattern = e.ctx.get("pattern", "")
    words = _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
    if e.rest and e.rest[-1] == "[key]":
        return _Words(_("invalid key {key}: expected {words}", key=_describe(e.value), words=words), at_key=True)
    return _Words(_("{value} is not valid here: expected {words}", value=_describe(e.value), words=words))


_BOUNDS = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than",
           "less_than": "less than"}


_BOUND_WORDS = {
    "greater_than_equal": lambda: _("must be at least {limit}, not {found}"),
    "less_than_equal": lambda: _("must be at most {limit}, not {found}"),
    "greater_than": lambda: _("must be more than {limit}, not {found}"),
    "less_than": lambda: _("must be less than {limit}, not {found}"),
}


def _bound(e: _Error) -> _Words:
    limit = next(iter(e.ctx.values()), "?")
    return _Words(_BOUND_WORDS[e.kind]().format(limit=limit, found=_describe(e.value)))


def _length(e: _Error) -> _Words:
    text = isinstance(e.value, str)
    if e.kind in ("too_short", "string_too_short"):
        return _Words((_("needs at least {count} character(s)") if text else _("needs at least {count} item(s)"))
                      .format(count=e.ctx.get("min_length")))
    return _Words((_("too long: at most {count} characters are allowed") if text
                   else _("too long: at most {count} items are allowed")).format(count=e.ctx.get("max_length")))


def _value_error(e: _Error) -> _Words:
    return _Words(e.msg.removeprefix("Value error, "))


def _wrong_type(e: _Error) -> _Words:
    hint = None
    if e.kind == "string_type" and isinstance(e.value, (bool, int, float)):
        hint = _('YAML read this as a boolean or number; put it in quotes, e.g. "yes" or "08"')
    elif e.kind in ("model_type", "model_attributes_type") and not e.loc:
        hint = _("the document must be a mapping with apiVersion, kind, metadata and spec")
    return _Words(_("expected {what}, not {found}", what=_TYPE_WORDS[e.kind], found=_describe(e.value)), hint=hint)


def _fallback(e: _Error) -> _Words:
    return _Words(e.msg or e.kind)


_WORDS_FOR = {
    "missing": _missing, "extra_forbidden": _unknown, "literal_error": _literal,
    "string_pattern_mismatch": _pattern, "value_error": _value_error,
    **{kind: _bound for kind in _BOUNDS},
    **{kind: _length for kind in ("too_short", "too_long", "string_too_short", "string_too_long")},
    **{kind: _wrong_type for kind in _TYPE_WORDS},
}


def _friendly(error: dict, model_cls: type[BaseModel], data: Any) -> tuple[Problem, bool]:
    """One pydantic error in plain words, and whether it points at a key (unknown field)."""
    loc, rest = _data_loc(data, tuple(error["loc"]))
    e = _Error(kind=error["type"], loc=loc, rest=rest, value=error.get("input"), ctx=error.get("ctx") or {},
               msg=str(error.get("msg", "")), model_cls=model_cls)
    words = _WORDS_FOR.get(e.kind, _fallback)(e)
    message, at_key = words.message, words.at_key
    if rest and rest[-1] == "[key]" and not at_key:
        message, at_key = _("invalid key {key}: {problem}", key=_describe(loc[-1] if loc else "?"),
                            problem=message), True
    return Problem(path=format_path(words.loc or loc), message=message, hint=words.hint), at_key


def problems_from_validation(exc: ValidationError, model_cls: type[BaseModel], data: Any,
                             positions: Positions) -> list[Problem]:
    """Pydantic errors as located, friendly problems; one per path (union branches: the first)."""
    by_path: dict[str, Problem] = {}
    for error in exc.errors(include_url=False):
        problem, at_key = _friendly(error, model_cls, data)
        problem = positions.place(problem, key=at_key)
        by_path.setdefault(problem.path, problem)  # a union's first branch says it best
    return list(by_path.values())


# --------------------------------------------------------------------------- entry points

def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line or 0, p.column or 0, p.path, p.message))


def load_located(source: Source, model_cls: type[M], filename: str | None = None) -> Loaded[M]:
    """Load one document into *model_cls*, keeping positions; raise InvalidInput with all problems."""
    raw, name = _read(source, filename)
    text = _decode(raw, name)
    root, problems = _compose(text, name)
    if isinstance(root, yaml.ScalarNode) and root.tag == f"{_CORE}null" and not problems:
        root = None
        problems.append(_empty_problem(name))
    if root is None:
        raise InvalidInput(sort_problems(problems))
    builder = _Builder(name)
    data = builder.build(root)
    problems += builder.problems
    if problems:
        raise InvalidInput(sort_problems(problems))
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(sort_problems(problems_from_validation(exc, model_cls, data, builder.positions))) from None
    return Loaded(model=model, positions=builder.positions)


def load_document(source: Source, model_cls: type[M], filename: str | None = None) -> M:
    """Load one document into *model_cls*; raise InvalidInput with every problem located."""
    return load_located(source, model_cls, filename).model


def load_request(source: Source, *, filename: str | None = None):
    from gcloudctl.model.request import TenantRequest

    return load_document(source, TenantRequest, filename)


def load_platform(source: Source, *, filename: str | None = None):
    from gcloudctl.model.catalog import PlatformCatalog

    return load_document(source, PlatformCatalog, filename)


def load_agencies(source: Source, *, filename: str | None = None):
    from gcloudctl.model.catalog import AgencyRegistry

    return load_document(source, AgencyRegistry, filename)
