"""The project's documents stand on their own: every relative link resolves.

A link in README.md, docs/*.md or deploy/README.md must name a file of this repository
(never a path that leaves it, such as ``../shared/...``, which a clone does not have),
and an anchor must name a heading of the file it points at, as GitHub makes anchors.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "deploy" / "README.md", *(ROOT / "docs").glob("*.md")]
)

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def unfenced(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `#` there is no heading)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return kept


def prose(text: str) -> str:
    """The text without code, fenced or inline, where brackets are not links."""
    return "\n".join(re.sub(r"`+[^`]*`+", "", line) for line in unfenced(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"<[^>]+>", "", heading)  # tags
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their label
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, duplicates numbered as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    for line in unfenced(path.read_text()):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(1))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    text = prose(path.read_text())
    return [*LINK.findall(text), *HTML_LINK.findall(text)]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of one document of ``root``, in words."""
    problems = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: {target}"
        if not dest.is_relative_to(root):
            problems.append(f"{where} leaves the repository")
        elif not dest.exists():
            problems.append(f"{where} names no file")
        elif anchor:
            if dest.suffix != ".md":
                problems.append(f"{where} has an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                problems.append(f"{where} names no heading of {dest.relative_to(root)}")
    return problems


def test_there_are_documents_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in DOCUMENTS}
    assert {"README.md", "docs/api.md", "docs/design.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_the_readme_links_every_document_in_docs() -> None:
    readme = set(links(ROOT / "README.md"))
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme]
    assert missing == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    """The checker itself: each kind of broken link is reported, the good ones are not."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# Project\n\n## Two commands\n")
    (root / "docs" / "design.md").write_text("# The design\n\n## Design\n")
    probe = root / "docs" / "probe.md"
    probe.write_text(
        "# Probe\n\n## A heading: with `code`, punctuation\n\n## Design\n\n"
        "[ok](#a-heading-with-code-punctuation) [ok](../README.md#two-commands) [ok](https://x.org)\n"
        "[ok](design.md#design-1) [ok](#design)\n"
        "[gone](missing.md) [no anchor](#nowhere) [other anchor](design.md#nowhere)\n"
        "[outside](../../shared/DESIGN.md) `[code](ignored.md)`\n"
        '<img src="screenshots/none.png">\n'
        "```\n[fenced](ignored.md)\n```\n"
    )
    assert broken_links(probe, root) == [
        "docs/probe.md: design.md#design-1 names no heading of docs/design.md",
        "docs/probe.md: missing.md names no file",
        "docs/probe.md: #nowhere names no heading of docs/probe.md",
        "docs/probe.md: design.md#nowhere names no heading of docs/design.md",
        "docs/probe.md: ../../shared/DESIGN.md leaves the repository",
        "docs/probe.md: screenshots/none.png names no file",
    ]
    (root / "docs" / "design.md").write_text("# The design\n\n## Design\n\n## Design\n")
    assert "design.md#design-1" not in " ".join(broken_links(probe, root))
