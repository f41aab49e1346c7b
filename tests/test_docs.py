"""Every link in the docs resolves inside the repository: a reader of a clone or a release follows none to nowhere.

Checked: inline links ``[text](target)``, reference definitions ``[label]: target``, and file names in
code spans that end in ``.md`` (how a doc often points at another). Web links are not fetched; a
``#anchor`` into a markdown file must name one of its headings (GitHub's slugs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted({REPO / "README.md", REPO / "bench" / "RESULTS.md", *(REPO / "docs").rglob("*.md")})

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_CODE_MD = re.compile(r"`([^`\s]+\.md(?:#[^`\s]*)?)`")
_WEB = ("http://", "https://", "mailto:")


def links(path: Path) -> list[str]:
    """The link targets in a markdown file, fenced code blocks left out."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return [*_INLINE.findall(text), *_REFERENCE.findall(text), *_CODE_MD.findall(text)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def problem(doc: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``doc``) does not resolve inside the repository, or None when it does."""
    if target.startswith(_WEB):
        return None
    name, _, anchor = target.partition("#")
    resolved = (doc.parent / name).resolve() if name else doc
    if not resolved.is_relative_to(REPO):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading #{anchor} in {resolved.relative_to(REPO)}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves_inside_the_repository(doc: Path) -> None:
    broken = [(target, why) for target in links(doc) if (why := problem(doc, target))]
    assert broken == [], f"{doc.relative_to(REPO)}: {broken}"


def test_the_checker_catches_what_it_is_for(tmp_path: Path) -> None:
    """The parser sees each kind of link, so a clean run above means something."""
    doc = REPO / "docs" / "ARCHITECTURE.md"
    assert problem(doc, "../../shared/DESIGN.md") == "points outside the repository"
    assert problem(doc, "MISSING.md") == "no such file"
    assert problem(doc, "../README.md#no-such-heading") == "no heading #no-such-heading in README.md"
    assert problem(doc, "../README.md#quick-start") is None and problem(doc, "https://example.com/x") is None
    sample = tmp_path / "sample.md"
    sample.write_text("See [a](a.md), `../b.md` and [c][c].\n\n[c]: <c.md>\n\n```\n[not](a link.md)\n```\n")
    assert sorted(links(sample)) == ["../b.md", "a.md", "c.md"]
