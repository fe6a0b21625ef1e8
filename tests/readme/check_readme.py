#!/usr/bin/python3
"""Checks that every C++ block of README.md is a copy of code the test suite compiles and runs.

usage: check_readme.py SOURCE_DIR [--update]

Each ```cpp block must follow a line `<!-- example: PATH -->` (the whole file) or
`<!-- example: PATH#NAME -->` (the lines between `[readme:NAME]` and `[/readme:NAME]` in that
file, less their common indentation), PATH relative to SOURCE_DIR; the block must be that text
exactly, and every `[readme:NAME]` region of a file the README names must be shown. With
--update, the README's blocks are rewritten from their sources instead.
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


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--update"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1])
    readme = root / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    problems, shown, sources, out = [], set(), {}, []
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
        where = f"README.md:{start + 1}"
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
        if expected != block and len(argv) == 2:
            diff = difflib.unified_diff(expected.splitlines(keepends=True),
                                        block.splitlines(keepends=True),
                                        f"{path}" + (f"#{name}" if name else ""), where)
            problems.append(f"{where}: differs from its source (--update copies it):\n" +
                            "".join(diff))
    for path, text in sources.items():
        try:
            names = regions(text)
        except ValueError:
            continue
        for name in names:
            if (path, name) not in shown:
                problems.append(f"{path}: region [readme:{name}] is shown nowhere in README.md")
    if len(argv) == 3:
        readme.write_text("".join(out))
    for problem in problems:
        print(problem)
    shown_count = len(shown)
    print(f"{shown_count} example(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
