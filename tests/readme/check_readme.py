#!/usr/bin/python3
"""Checks that every C++ block of the tree's Markdown files (README.md, sdk/README.md, ...) is a
copy of code the test suite compiles and runs.

usage: check_readme.py SOURCE_DIR [--update]

Each ```cpp block must follow a line `<!-- example: PATH -->` (the whole file) or
`<!-- example: PATH#NAME -->` (the lines between `[readme:NAME]` and `[/readme:NAME]` in that
file, less their common indentation), PATH relative to SOURCE_DIR; the block must be that text
exactly, and every `[readme:NAME]` region of a file a Markdown file names must be shown in one
of them. With --update, the blocks are rewritten from their sources instead.
"""
import difflib
import re
import sys
import textwrap
from pathlib import Path

MARKER = re.compile(r"^<!-- example: (?P<path>[^#\s]+)(?:#(?P<name>[\w-]+))? -->$")
REGION = re.compile(r"\[(?P<end>/?)readme:(?P<name>[\w-]+)\]")


def regions(text):
    """{name: text} of the file's [readme:NAME] ... [/readme:NAME] regions."""
    found, open_at = {}, {}
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        match = REGION.search(line)
        if not match:
            continue
        name = match["name"]
        if not match["end"]:
            open_at[name] = number + 1
        elif name in open_at:
            found[name] = textwrap.dedent("".join(lines[open_at.pop(name):number]))
    for name in open_at:
        raise ValueError(f"region {name} is not closed")
    return found


def markdown_files(root):
    """The tree's Markdown files, outside build directories."""
    return sorted(path for path in root.rglob("*.md")
                  if not any(part.startswith(("build", ".")) or part == "__pycache__"
                             for part in path.relative_to(root).parts[:-1]))


def check(root, readme, update, problems, shown, sources):
    """Checks (or with `update`, rewrites) the C++ blocks of one Markdown file."""
    name_in_tree = readme.relative_to(root)
    lines = readme.read_text().splitlines(keepends=True)
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if line.rstrip() != "```cpp":
            continue
        start = i  # the block's first line, 0-based
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        block = "".join(lines[start:i])
        where = f"{name_in_tree}:{start + 1}"
        before = [l for l in lines[:start - 1] if l.strip()]
        marker = MARKER.match(before[-1].strip()) if before else None
        if not marker:
            problems.append(f"{where}: a C++ block without `<!-- example: PATH[#NAME] -->` "
                            "on the line before it")
            out.extend(lines[start:i])
            continue
        path, name = marker["path"], marker["name"]
        try:
            text = sources.setdefault(path, (root / path).read_text())
            expected = text if name is None else regions(text).get(name)
        except (OSError, ValueError) as error:
            problems.append(f"{where}: {path}: {error}")
            out.extend(lines[start:i])
            continue
        if expected is None:
            problems.append(f"{where}: {path} has no region [readme:{name}]")
            expected = block
        shown.add((path, name))
        out.append(expected)
        if expected != block and not update:
            diff = difflib.unified_diff(expected.splitlines(keepends=True),
                                        block.splitlines(keepends=True),
                                        f"{path}" + (f"#{name}" if name else ""), where)
            problems.append(f"{where}: differs from its source (--update copies it):\n" +
                            "".join(diff))
    if update:
        readme.write_text("".join(out))


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--update"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1])
    problems, shown, sources = [], set(), {}
    for readme in markdown_files(root):
        check(root, readme, len(argv) == 3, problems, shown, sources)
    for path, text in sources.items():
        try:
            names = regions(text)
        except ValueError:
            continue
        for name in names:
            if (path, name) not in shown:
                problems.append(f"{path}: region [readme:{name}] is shown in no Markdown file")
    for problem in problems:
        print(problem)
    print(f"{len(shown)} example(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
