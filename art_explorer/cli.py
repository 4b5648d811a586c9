"""Command lines from typed dataclasses: one dataclass per script's options.

Each field is one flag (`max_seconds` → `--max-seconds`), its type the flag's type and
its docstring (the string literal under the field, CleanRL's `Args` style) the help,
which also shows the real default. The gallery, iterate and the benches build the same
dataclass instead of argv strings, so a default lives in one place:

    @dataclass
    class Args:
        target: str = field(default="", metadata={"positional": True})
        \"\"\"the picture to invert\"\"\"
        budget: int = 500
        \"\"\"renders predict may spend\"\"\"

    args = cli.parse(Args, argv)      # argv None: sys.argv[1:]

Supported field types: str, int, float, bool (`--flag` / `--no-flag`), `T | None`,
`list[T]` (one or more values) and `Literal[...]` (choices). Field metadata:
`positional` (a positional argument), `flags` (extra spellings, e.g. ("-n",)),
`help` (instead of the docstring), `const` (the value of the flag given without
one: `--ray` alone is `--ray local`).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (and of its bases), by name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        node = tree.body[0] if tree.body else None
        body = node.body if isinstance(node, ast.ClassDef) else []
        for stmt, nxt in itertools.pairwise(body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for `T | None`, else (tp, False)."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _add_field(
    ap: argparse.ArgumentParser, f: dataclasses.Field[Any], tp: Any, doc: str
) -> None:
    """One argparse argument for one dataclass field."""
    tp, optional = _unwrap_optional(tp)
    default = _default(f)
    required = default is dataclasses.MISSING
    kw: dict[str, Any] = {"help": f.metadata.get("help", doc) or None, "dest": f.name}
    if not required:
        kw["default"] = default
        if kw["help"] is not None:
            kw["help"] += " (default: %(default)s)"
    if get_origin(tp) is list:
        (inner,) = get_args(tp) or (str,)
        kw.update(nargs="+" if required else "*", type=inner)
    elif get_origin(tp) is Literal:
        choices = get_args(tp)
        kw.update(choices=choices, type=type(choices[0]))
    elif tp is bool:
        kw["action"] = argparse.BooleanOptionalAction
    else:
        kw["type"] = tp
    if "const" in f.metadata:
        kw.update(nargs="?", const=f.metadata["const"])
    if optional and "type" in kw:
        base = kw["type"]
        kw["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
    if f.metadata.get("positional"):
        kw.pop("dest")
        if not required:
            kw["nargs"] = "?"
        ap.add_argument(f.name, **kw)
        return
    flags = [*f.metadata.get("flags", ()), "--" + f.name.replace("_", "-")]
    ap.add_argument(*flags, required=required, **kw)


def parser(cls: type, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser whose arguments are the fields of the dataclass `cls`."""
    doc = description if description is not None else inspect.getdoc(cls)
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.init:
            _add_field(ap, f, hints[f.name], docs.get(f.name, ""))
    return ap


def parse(
    cls: type[T], argv: list[str] | None = None, description: str | None = None
) -> T:
    """Parse `argv` (None: the process's arguments) into an instance of `cls`."""
    ns = parser(cls, description).parse_args(argv)
    return cls(**vars(ns))
