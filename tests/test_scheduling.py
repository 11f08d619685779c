"""The suite's xdist scheduling (conftest.py): a test module whose tests share a costly
module-scoped autouse fixture runs whole on one worker, or every worker that runs one of its
tests builds the fixture again (conftest.py's ONE_WORKER_MODULES says why)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _one_worker_modules() -> set[str]:
    tree = ast.parse((ROOT / "conftest.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["ONE_WORKER_MODULES"]:
            return set(ast.literal_eval(node.value))
    raise AssertionError("conftest.py no longer defines ONE_WORKER_MODULES")


def _has_module_autouse_fixture(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call):
                kwargs = {kw.arg: kw.value for kw in decorator.keywords}
                scope, autouse = kwargs.get("scope"), kwargs.get("autouse")
                if (
                    isinstance(scope, ast.Constant)
                    and scope.value in ("module", "package", "session")
                    and isinstance(autouse, ast.Constant)
                    and autouse.value is True
                ):
                    return True
    return False


def test_modules_with_a_shared_autouse_fixture_run_on_one_worker():
    listed = _one_worker_modules()
    shared = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if _has_module_autouse_fixture(path)
    }
    assert shared, "no module-scoped autouse fixture found: the check no longer sees them"
    assert shared <= listed, f"add to ONE_WORKER_MODULES in conftest.py: {sorted(shared - listed)}"
    assert all((ROOT / module).is_file() for module in listed), "a listed module is gone"
