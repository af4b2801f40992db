"""The documentation site's configuration stays complete, without building it (CI runs ``mkdocs build --strict``).

Every tutorial notebook is in the navigation of mkdocs.yml, every public module of the package is rendered by a
``::: module`` line of a page under docs/api/ (and every such line names a module that exists), and every README /
DEVELOPERS.md passage that a page includes can still be found where the page says it starts and ends.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "pytorch_grad_cam"
INCLUDE = re.compile(r"\{%\s*include-markdown\s+\"([^\"]+)\"(.*?)%\}", flags=re.S)


def public_modules() -> set[str]:
    """Dotted names of every module of the package whose path has no part starting with ``_`` (packages included)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(part.startswith("_") for part in parts):
            names.add(".".join(parts))
    return names


def rendered_modules() -> set[str]:
    return {
        name
        for page in (DOCS / "api").glob("*.md")
        for name in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), flags=re.M)
    }


def test_every_tutorial_is_in_the_navigation() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    notebooks = sorted(path.name for path in (ROOT / "tutorials").glob("*.ipynb"))
    assert notebooks
    listed = set(re.findall(r"^\s*- (?:.+: )?tutorials/(\S+\.ipynb)\s*$", config, flags=re.M))
    missing = [name for name in notebooks if name not in listed]
    assert not missing, f"add these notebooks to the nav of mkdocs.yml: {missing}"


def test_every_public_module_has_an_api_page_and_every_api_entry_exists() -> None:
    public, rendered = public_modules(), rendered_modules()
    assert "pytorch_grad_cam.core.base" in public and "pytorch_grad_cam.metrics" in public
    assert not public - rendered, f"add a '::: module' line to a page of docs/api/ for: {sorted(public - rendered)}"
    assert not rendered - public, f"docs/api/ renders modules that do not exist: {sorted(rendered - public)}"


def included_passages() -> list:
    """One ``pytest.param(page, source, target, start, end)`` per include-markdown directive of the docs pages."""
    passages = []
    for page in sorted(DOCS.rglob("*.md")):
        for target, options in INCLUDE.findall(page.read_text(encoding="utf-8")):
            start = re.search(r'\bstart="([^"]*)"', options)
            end = re.search(r'\bend="([^"]*)"', options)
            name = page.relative_to(ROOT).as_posix()
            start_text, end_text = start and start.group(1), end and end.group(1)
            label = f"{name} <- {Path(target).name}: {start_text or '(top)'}"
            source = (page.parent / target).resolve()
            passages.append(pytest.param(name, source, target, start_text, end_text, id=label))
    return passages


@pytest.mark.parametrize("page, source, target, start, end", included_passages())
def test_included_passages_are_found(page: str, source: Path, target: str, start: str | None, end: str | None) -> None:
    assert source.is_file(), f"{page} includes {target}, which does not exist"
    text = source.read_text(encoding="utf-8")
    begin = 0
    if start is not None:
        assert start in text, f"{page}: {target} no longer contains the start of its passage: {start!r}"
        begin = text.index(start) + len(start)
    if end is not None:
        assert end in text[begin:], f"{page}: {target} no longer contains the end of its passage: {end!r}"


def load_docs_module(name: str):
    """A module of docs/ (the site's build helpers), imported from its file."""
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_github_list_layout_is_made_explicit_for_python_markdown() -> None:
    pytest.importorskip("mkdocs")
    hooks = load_docs_module("hooks")
    text = "\n".join(["Notes:", "- one", "  more of one", "", "  | a |", "  |---|", "", "  after the table", "- two"])
    fence = "\n".join(["", "```", "- not a list", "```", "end"])
    expected = "\n".join(
        ["Notes:", "", "- one", "    more of one", "", "    | a |", "    |---|", "", "    after the table", "", "- two"]
    )
    assert hooks.github_lists(text + fence) == expected + fence


def test_griffe_extension_reads_attribute_comments_and_links_roles() -> None:
    griffe = pytest.importorskip("griffe")
    extension = load_docs_module("griffe_sphinx").SphinxConventions()
    package = griffe.load("pytorch_grad_cam", search_paths=[str(ROOT)], extensions=griffe.load_extensions(extension))
    base = package["core.base.BaseCAM"]
    assert base["default_orientation"].docstring.value == "``orientation`` when it is not given."
    assert '<autoref identifier="pytorch_grad_cam.core.base.BaseCAM.needs" optional>`needs`</autoref>' in (
        base.docstring.value
    )
