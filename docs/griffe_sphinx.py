"""A griffe extension for the API reference: the two Sphinx conventions the docstrings use, read as Markdown.

- ``#:`` comments document the attribute or constant assigned on the next line (Sphinx autodoc's convention,
  e.g. ``#: The batch size when none is given.`` above ``default_batch_size = 16``); griffe reads only string
  docstrings, so such an attribute would have no documentation and be left out of the site.
- Cross-reference roles (``:class:`BaseCAM```, ``:func:`~pytorch_grad_cam.core.projection.orient```) would show
  as literal text. Each is resolved in the scope of the object whose docstring holds it (its members, its
  module's imports, then the parents' scopes; a dotted name resolves its first part) and becomes an *optional*
  cross-reference: a link when the target is rendered on the site, plain code otherwise (an object of another
  library, a private helper), so a role never breaks the strict build. ``~`` shows the last part of the name
  only, as in Sphinx.

Configured in mkdocs.yml under the mkdocstrings Python handler's ``extensions``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(~?)\.?([\w.]+)`")
COMMENT = "#:"


def resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` in the scope of ``obj``, or ``None`` when it cannot be found."""
    if name.split(".")[0] == obj.package.name:
        return name
    first, _, rest = name.partition(".")
    try:
        path = obj.resolve(first)
    except griffe.NameResolutionError:
        return None
    return f"{path}.{rest}" if rest else path


def link_roles(obj: griffe.Object, text: str) -> str:
    """``text`` with every role replaced by an optional cross-reference (or code when it does not resolve)."""

    def replace(match: re.Match[str]) -> str:
        short, name = match.group(1), match.group(2)
        shown = name.rsplit(".", 1)[-1] if short else name
        path = resolve(obj, name)
        if path is None:
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional>`{shown}`</autoref>'

    return ROLE.sub(replace, text)


def comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines just above an attribute's assignment, as its docstring (``None`` if none)."""
    if obj.lineno is None or obj.filepath is None or isinstance(obj.filepath, list):
        return None
    lines = obj.lines_collection[obj.filepath]
    index = obj.lineno - 2  # the line above the assignment, 0-based
    comment: list[str] = []
    while index >= 0 and lines[index].lstrip().startswith(COMMENT):
        comment.insert(0, lines[index].lstrip()[len(COMMENT) :].strip())
        index -= 1
    if not comment:
        return None
    return griffe.Docstring("\n".join(comment), lineno=index + 2, endlineno=obj.lineno - 1, parent=obj)


def defined_objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """``obj`` and every object defined under it (aliases, i.e. imported names, are skipped)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from defined_objects(member)  # type: ignore[arg-type]


class SphinxConventions(griffe.Extension):
    """Read ``#:`` attribute comments and Sphinx roles in every docstring of a package (see the module)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in defined_objects(pkg):
            if obj.docstring is None and obj.is_attribute:
                obj.docstring = comment_docstring(obj)
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = link_roles(obj, obj.docstring.value)
