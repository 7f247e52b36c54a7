"""The house rules of the package layout, checked: library below, chapters above, no cycles."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tlcourse"


def _imports() -> dict[str, set[str]]:
    edges = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        targets = set()
        tree = ast.parse(path.read_text())
        # imports under `if TYPE_CHECKING:` are for type hints only, never executed
        type_only = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If)
                     and getattr(node.test, "id", None) == "TYPE_CHECKING" for inner in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tlcourse"):
                targets.add(node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("tlcourse"))
        edges[name] = targets
    return edges


def test_the_library_never_imports_a_chapter_or_the_cli():
    for module, targets in _imports().items():
        if module.startswith("tlcourse.chapters") or module in ("tlcourse.cli", "tlcourse.__main__"):
            continue
        upward = {t for t in targets if t.startswith("tlcourse.chapters") or t == "tlcourse.cli"}
        assert not upward, f"{module} imports {upward}"


def test_no_import_cycles():
    edges = _imports()
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in edges.get(module, ()):
            if target not in edges:
                continue
            assert state.get(target) != 1, f"import cycle: {' -> '.join(path + [target])}"
            if target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in edges:
        if module not in state:
            visit(module, [module])


def test_profile_names_are_only_read_through_settings_tables():
    book = PACKAGE.parent / "book"
    for path in list(PACKAGE.rglob("*.py")) + list(book.glob("*.md")):
        assert "profile.name ==" not in path.read_text(), path
