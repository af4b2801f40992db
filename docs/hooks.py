"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml; not a page of the site).

- ``on_files``: the tutorials live in ``tutorials/`` at the repository root (the test suite runs them there),
  outside ``docs/``. Every ``tutorials/*.ipynb`` and ``tutorials/README.md`` (the section's index page) is added
  to the site's files under ``tutorials/``, so mkdocs-jupyter executes and renders the notebooks in place: no
  copy and no symbolic link to keep in step. It runs before mkdocs-jupyter's own ``on_files``, which turns the
  added notebooks into pages.
- ``on_page_markdown``: the README, DEVELOPERS.md and the pages are written for GitHub, whose Markdown lets a list
  start right after a line of text and indents a list item's continuation (paragraphs, tables, code, nested
  lists) by two spaces; Python-Markdown, which MkDocs uses, needs a blank line before a list and four spaces.
  :func:`github_lists` makes that one adjustment, after the README passages have been included.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
ITEM = re.compile(r"(?:[-*+]|\d+[.)]) ")  # a list item starting at column 0
FENCE = re.compile(r"(```+|~~~+)")  # a fenced code block opening at column 0


def tutorial_sources() -> list[Path]:
    """The files of ``tutorials/`` that become pages: its README (the index) and every notebook, sorted."""
    return [TUTORIALS / "README.md", *sorted(TUTORIALS.glob("*.ipynb"))]


@event_priority(100)  # before mkdocs-jupyter (priority 0), which turns .ipynb files into pages
def on_files(files: Files, config: MkDocsConfig) -> Files:
    for path in tutorial_sources():
        uri = path.relative_to(ROOT).as_posix()
        if files.get_file_from_path(uri) is not None:
            raise ValueError(f"docs/{uri} would hide the tutorial file {uri}; remove one of them")
        files.append(File(uri, str(ROOT), config.site_dir, config.use_directory_urls))
    return files


def github_lists(markdown: str) -> str:
    """``markdown`` with GitHub's list layout made explicit for Python-Markdown.

    A blank line is put before a list that follows a line of text, and the continuation lines of a top-level list
    item (indented by two spaces or more) are indented by two more spaces, so that everything GitHub shows inside
    the item stays inside it. Fenced code blocks at the top level are left untouched.
    """
    lines: list[str] = []
    in_item = False  # inside a top-level list item
    several_blocks = False  # the current item has a blank line inside (a table, a second paragraph, code)
    fence: str | None = None
    for line in markdown.split("\n"):
        previous = lines[-1] if lines else ""
        if fence is not None:
            if line.startswith(fence):
                fence = None
        elif opening := FENCE.match(line):
            fence, in_item = opening.group(1), False
        elif ITEM.match(line):
            # after text, or after an item of several blocks, Python-Markdown reads the line as more text
            if previous.strip() and (several_blocks or not in_item):
                lines.append("")
            in_item, several_blocks = True, False
        elif in_item and line.startswith("  "):
            line = "  " + line
        elif in_item and not line.strip():
            several_blocks = True
        elif in_item and not previous.strip():
            in_item = False  # text at column 0 after a blank line ends the list
        lines.append(line)
    return "\n".join(lines)


@event_priority(-100)  # after include-markdown has put the README passages in
def on_page_markdown(markdown: str, page: Page, **kwargs: object) -> str:
    return github_lists(markdown)
