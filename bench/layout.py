"""Benchmark of the code's layout: lines per .py file, the longest functions, duplicates.

    python bench/layout.py                      # e1f52fa (before issue 11) | this tree
    python bench/layout.py --before REV         # another revision beside this tree
    python bench/layout.py --before none        # this tree alone
    python bench/layout.py --quick              # the same as without (make bench)

Walks the repository's .py files (git's tracked and untracked-but-not-ignored ones;
at a revision, that revision's tree), counts lines per file, and finds the longest
functions with `ast` (a function's lines: from its `def` or first decorator to its
last line, nested functions counted inside their parent and on their own). When the
`duplicates` command is on PATH, its first line (pairs of places sharing six or more
lines) is reported for each tree. Prints a markdown report and writes
bench/results/layout.md.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from art_explorer import cli

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "e1f52fa"  # the tree before issue 11 ("one concept, one home")


@dataclass(frozen=True)
class Function:
    """One function or method: where it is and how many lines it spans."""

    path: str
    name: str
    line: int
    lines: int


@dataclass(frozen=True)
class Layout:
    """The .py files of one tree: lines per file and every function."""

    label: str
    files: dict[str, int]
    functions: list[Function]
    duplicates: str | None


@dataclass
class Args:
    """Options of bench/layout.py."""

    before: str = BEFORE
    """a git revision to measure beside the working tree, none for none (the
    default is the tree before issue 11's layout, when the checkout has it)"""
    top: int = 10
    """longest functions to list"""
    quick: bool = False
    """accepted for make bench; no effect"""
    out: Path = ROOT / "bench" / "results" / "layout.md"
    """markdown report"""


def parse_args(argv: list[str] | None = None) -> Args:
    return cli.parse(Args, argv, description=(__doc__ or "").split("\n\n")[0])


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def _functions(path: str, source: str) -> list[Function]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            last = node.end_lineno or node.lineno
            out.append(Function(path, node.name, node.lineno, last - first + 1))
    return out


def _duplicates(tree: Path) -> str | None:
    """The `duplicates` command's first line for TREE, or None when it is absent."""
    exe = shutil.which("duplicates")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "--repo", str(tree), "--most", "40", "--seconds", "120"],
        capture_output=True,
        text=True,
    ).stdout
    return out.splitlines()[0] if out else ""


def measure_tree(label: str, sources: dict[str, str], dup_tree: Path) -> Layout:
    files = {p: len(s.splitlines()) for p, s in sorted(sources.items())}
    functions = [f for p, s in sources.items() for f in _functions(p, s)]
    return Layout(label, files, functions, _duplicates(dup_tree))


def working_tree() -> Layout:
    names = _git("ls-files", "--cached", "--others", "--exclude-standard", "*.py")
    sources = {
        n: (ROOT / n).read_text(encoding="utf-8")
        for n in names.split()
        if (ROOT / n).is_file()
    }
    return measure_tree("working tree", sources, ROOT)


def revision(rev: str) -> Layout:
    """REV's .py files; `duplicates` runs on an export of REV's whole tree."""
    names = [n for n in _git("ls-tree", "-r", "--name-only", rev).split()]
    sources = {n: _git("show", f"{rev}:{n}") for n in names if n.endswith(".py")}
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "tree.tar"
        _git("archive", "--format=tar", "-o", str(archive), rev)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        archive.unlink()
        return measure_tree(rev, sources, Path(tmp) / "tree")


def report(layouts: list[Layout], top: int, command: str) -> str:
    lines = [
        "# Layout: lines per file, longest functions, duplicates",
        "",
        f"`{command}`",
        "",
        "## Totals",
        "",
        "| tree | .py files | lines | functions | duplicates (pairs of places sharing ≥ 6 lines) |",
        "|---|---:|---:|---:|---|",
    ]
    for lay in layouts:
        dup = lay.duplicates if lay.duplicates is not None else "(no `duplicates`)"
        lines.append(
            f"| {lay.label} | {len(lay.files)} | {sum(lay.files.values())} "
            f"| {len(lay.functions)} | {dup} |"
        )
    names = sorted({p for lay in layouts for p in lay.files})
    lines += ["", "## Lines per file", ""]
    lines.append("| file | " + " | ".join(lay.label for lay in layouts) + " |")
    lines.append("|---|" + "---:|" * len(layouts))
    for n in names:
        cells = [str(lay.files[n]) if n in lay.files else "–" for lay in layouts]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for lay in layouts:
        lines += ["", f"## The {top} longest functions: {lay.label}", ""]
        lines += ["| lines | function | where |", "|---:|---|---|"]
        longest = sorted(lay.functions, key=lambda f: (-f.lines, f.path, f.line))
        for f in longest[:top]:
            lines.append(f"| {f.lines} | {f.name} | {f.path}:{f.line} |")
    return "\n".join(lines) + "\n"


def _has(rev: str) -> bool:
    return (
        subprocess.run(
            ["git", "cat-file", "-e", f"{rev}^{{commit}}"],
            cwd=ROOT,
            capture_output=True,
        ).returncode
        == 0
    )


def main(args: Args) -> str:
    before: str | None = args.before
    if before == "none" or (before == BEFORE and not _has(BEFORE)):
        before = None
    layouts = [revision(before)] if before else []
    layouts.append(working_tree())
    command = "python bench/layout.py" + (f" --before {before}" if before else "")
    text = report(layouts, args.top, command)
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
