"""What `pip install ./clients/python` promises, checked without installing: Python >= 3.9 and the
standard library only. The machine's python3 may be newer than 3.9, so the modules are parsed with 3.9's
grammar and their imports checked against the standard library's module names."""

from __future__ import annotations

import ast
import sys
import unittest
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
MODULES = sorted((PACKAGE / "keyward").glob("*.py"))


class PackageTest(unittest.TestCase):
    def test_declares_python_3_9_and_no_dependencies(self) -> None:
        try:
            import tomllib  # Python 3.11+
        except ImportError:
            self.skipTest("tomllib needs Python 3.11")
        project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
        self.assertEqual(project["requires-python"], ">=3.9")
        self.assertEqual(project["dependencies"], [])

    def test_every_module_parses_as_python_3_9(self) -> None:
        self.assertGreater(len(MODULES), 0)
        for module in MODULES:
            with self.subTest(module=module.name):
                # feature_version rejects syntax newer than 3.9 (match statements, parenthesised context managers...).
                ast.parse(module.read_text(), filename=str(module), feature_version=(3, 9))

    def test_imports_only_the_standard_library(self) -> None:
        if not hasattr(sys, "stdlib_module_names"):
            self.skipTest("sys.stdlib_module_names needs Python 3.10")
        outside = []
        for module in MODULES:
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                outside += [f"{module.name}: {name}" for name in names if name.split(".")[0] not in sys.stdlib_module_names | {"__future__"}]
        self.assertEqual(outside, [])

    def test_annotations_are_not_evaluated_at_import(self) -> None:
        # `Optional[str]` spelled `str | None` parses on 3.9 but fails there when evaluated: annotations
        # stay strings (PEP 563) in every module that has any.
        for module in MODULES:
            tree = ast.parse(module.read_text())
            annotated = any(getattr(node, "annotation", None) is not None or getattr(node, "returns", None) is not None for node in ast.walk(tree))
            postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__" and "annotations" in [a.name for a in node.names] for node in tree.body)
            with self.subTest(module=module.name):
                self.assertTrue(postponed or not annotated, "needs `from __future__ import annotations`")


if __name__ == "__main__":
    unittest.main()
