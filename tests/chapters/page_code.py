"""The functions a page writes out in its own cells, loaded for tests: the code a reader sees is the code tested."""

from __future__ import annotations

import ast
import re
from pathlib import Path

BOOK = Path(__file__).resolve().parents[2] / "book"
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", re.S | re.M)


def page_functions(page: str) -> dict:
    """Run the imports and the top-level ``def`` and ``class`` statements of ``book/<page>.md``'s code cells.

    Nothing else of the page runs: no training, no data. Returns the namespace they were run in.
    """
    namespace: dict = {}
    for source in CODE_CELL.findall((BOOK / f"{page}.md").read_text(encoding="utf-8")):
        # a cell's options (":tags: [slide]") come first and are not Python
        code = "\n".join(line for line in source.splitlines() if not line.startswith(":"))
        keep = [node for node in ast.parse(code).body
                if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))]
        exec(compile(ast.Module(body=keep, type_ignores=[]), f"book/{page}.md", "exec"), namespace)  # noqa: S102
    return namespace
