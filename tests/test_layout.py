"""bench/layout.py: line counts and the longest functions, found with ast."""

from __future__ import annotations

from art_explorer import utils


def test_functions_span_decorators_and_nested_bodies() -> None:
    layout = utils.load_bench("layout")
    source = (
        "@dec\ndef outer():\n    def inner():\n        return 1\n    return inner\n"
    )
    found = {f.name: f.lines for f in layout._functions("x.py", source)}
    assert found == {"outer": 5, "inner": 2}


def test_report_lists_both_trees(tmp_path) -> None:
    layout = utils.load_bench("layout")
    f = layout.Function("a.py", "f", 1, 3)
    before = layout.Layout("old", {"a.py": 10, "b.py": 4}, [f], None)
    after = layout.Layout("new", {"a.py": 5}, [f], "3 pairs of places")
    text = layout.report([before, after], 1, "python bench/layout.py")
    assert "| b.py | 4 | – |" in text and "| a.py | 10 | 5 |" in text
    assert "3 pairs of places" in text and "| 3 | f | a.py:1 |" in text
