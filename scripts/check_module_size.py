"""Fail when a module under plugins/ or search_api/ is over 400 lines (`make lint`).

Small modules named for what they do are the house style (docs/contributing/index.md):
a file over the limit is a sign that two things share it. Alembic migrations and
package data are left out (generated or not code). Usage:

    .venv/bin/python scripts/check_module_size.py [--max-lines 400] [FOLDER ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("plugins", "search_api")
MAX_LINES = 400
# path parts that mark files which are not hand-written modules
SKIP_PARTS = {"migrations", "data", "__pycache__"}


def oversized(folders: list[Path], max_lines: int) -> list[tuple[Path, int]]:
    """(path, line count) of every .py file over ``max_lines``, longest first."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            if SKIP_PARTS & set(path.relative_to(folder).parts):
                continue
            with path.open("rb") as fh:
                lines = sum(1 for _ in fh)
            if lines > max_lines:
                found.append((path, lines))
    return sorted(found, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[ROOT / f for f in FOLDERS])
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    args = parser.parse_args(argv)
    found = oversized(args.folders, args.max_lines)
    for path, lines in found:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{shown}: {lines} lines, over the limit of {args.max_lines}. Split it into modules named for "
              f"what each part does (see docs/contributing/index.md, Conventions).", file=sys.stderr)
    if found:
        print(f"module size: {len(found)} module(s) over {args.max_lines} lines", file=sys.stderr)
        return 1
    print(f"module size: every module under {', '.join(str(f.name) for f in args.folders)} "
          f"is at most {args.max_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
