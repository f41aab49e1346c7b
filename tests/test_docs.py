"""Every link in the docs resolves inside the repository: a reader of a clone or a release follows none to nowhere.

Checked: inline links ``[text](target)``, reference definitions ``[label]: target``, and file names in
code spans that end in ``.md`` (how a doc often points at another). Web links are not fetched; a
``#anchor`` into a markdown file must name one of its headings (GitHub's slugs).

docs/DEPLOY.md promises that every command in it is tested or marked: each fenced block is preceded by
``<!-- tested: tests/FILE.py::TEST, ... -->`` (tests that exist) or ``<!-- not tested here: REASON -->``, and every
``stigmer ...`` command in a block uses only subcommands and options the real click tree has.
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


# -- docs/DEPLOY.md: every block tested or marked, every `stigmer` command real ------------------------------------

DEPLOY = REPO / "docs" / "DEPLOY.md"
_BLOCK = re.compile(r"^```[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*(tested|not tested here):\s*(.*?)\s*-->")
_TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def blocks(text: str) -> list[tuple[int, str | None, str, str]]:
    """Each fenced block: (line, marker kind or None, marker text, body); the marker is the last line above it."""
    found = []
    for match in _BLOCK.finditer(text):
        above = text[: match.start()].rstrip().splitlines()[-1:] or [""]
        marker = _MARKER.fullmatch(above[0].strip())
        kind, note = (marker.group(1), marker.group(2)) if marker else (None, "")
        found.append((text.count("\n", 0, match.start()) + 1, kind, note, match.group(1)))
    return found


def _test_names(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test_")}


def command_lines(body: str) -> list[list[str]]:
    """The ``stigmer ...`` commands of a shell block: continuation lines joined, comments and env assignments
    dropped, one argv per command (split at ``;``, ``&&``, ``||``, ``|``); ``docker run ... stigmer:TAG ARGS`` is
    ``stigmer ARGS`` (the image's entrypoint)."""
    import shlex

    commands = []
    for line in body.replace("\\\n", " ").splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        command: list[str] = []
        for word in [*words, ";"]:
            if word in (";", "&&", "||", "|"):
                while command and re.match(r"^[A-Za-z_]\w*=", command[0]):
                    command.pop(0)
                image = [i for i, w in enumerate(command) if w.startswith("stigmer:")]  # docker run IMAGE ARGS
                if command and command[0] == "stigmer":
                    commands.append(command[1:])
                elif command[:2] == ["docker", "run"] and image:
                    commands.append(command[image[0] + 1:])
                command = []
            else:
                command.append(word)
    return commands


def cli_problems(argv: list[str]) -> list[str]:
    """What in ``stigmer ARGV`` the real command tree does not have: a subcommand or an option."""
    import click

    from stigmer.cli.main import cli

    command: click.Command = cli
    path = ["stigmer"]
    problems: list[str] = []
    words = iter(argv)
    for word in words:
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            option = next((p for p in command.params if isinstance(p, click.Option)
                           and name in (*p.opts, *p.secondary_opts)), None)
            if option is None and name not in ("-h", "--help"):
                problems.append(f"`{' '.join(path)}` has no option {name}")
                break  # whether a value follows is unknown: the rest cannot be read
            elif option is not None and not option.is_flag and "=" not in word:
                next(words, None)  # its value
        elif isinstance(command, click.Group):
            sub = command.get_command(click.Context(command), word)
            if sub is None:
                problems.append(f"`{' '.join(path)}` has no subcommand {word!r}")
                break
            command, path = sub, [*path, word]
    return problems


def deploy_problems(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    problems = []
    for line, kind, note, body in blocks(text):
        if kind is None:
            problems.append(f"line {line}: a block with no <!-- tested: ... --> or <!-- not tested here: ... -->")
        elif kind == "tested":
            refs = _TEST_REF.findall(note)
            if not refs:
                problems.append(f"line {line}: 'tested' names no tests/FILE.py::TEST")
            for file, name in refs:
                if not (REPO / file).exists() or name not in _test_names(REPO / file):
                    problems.append(f"line {line}: no test {file}::{name}")
        elif not note:
            problems.append(f"line {line}: 'not tested here' without the reason")
        for argv in command_lines(body):
            problems.extend(f"line {line}: {p}" for p in cli_problems(argv))
    return problems


def test_every_deploy_block_is_tested_or_marked_and_uses_only_real_commands_and_flags() -> None:
    text = DEPLOY.read_text(encoding="utf-8")
    assert len(blocks(text)) >= 10 and sum(len(command_lines(b[3])) for b in blocks(text)) >= 15
    assert deploy_problems(DEPLOY) == []


def test_the_deploy_checker_catches_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "DEPLOY.md"
    sample.write_text(
        "```bash\nstigmer get agents\n```\n\n"
        "<!-- tested: tests/test_docs.py::test_no_such_test -->\n```bash\nstigmer get agents\n```\n\n"
        "<!-- not tested here: no Docker -->\n```bash\n"
        "X=1 stigmer server --host 0.0.0.0 --tls-certs c.pem \\\n  --port 1 && stigmer --server URL tokens list\n"
        "stigmer --server URL --token-file f token create --role runner --name r --out r.token  # fine\n"
        "docker run -d -v x:/y stigmer:0.1 runner --tokenfile r.token\n```\n\n"
        "<!-- not tested here: x -->\n\n```yaml\nkey: stigmer run --bogus\n```\n")
    assert deploy_problems(sample) == [
        "line 1: a block with no <!-- tested: ... --> or <!-- not tested here: ... -->",
        "line 6: no test tests/test_docs.py::test_no_such_test",
        "line 11: `stigmer server` has no option --tls-certs",
        "line 11: `stigmer` has no subcommand 'tokens'",
        "line 11: `stigmer runner` has no option --tokenfile",
    ]
