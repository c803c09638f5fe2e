"""scripts/deps installs every module the Python tests import, from Debian's archive.

On a fresh Debian 12 the tests run with /usr/bin/python3 and only what scripts/deps
installed; a module imported here that no package in scripts/deps provides would stop
them with an ImportError there, while passing on a machine that happens to have it.
"""

import ast
import importlib.machinery
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
DEPS_SCRIPT = TESTS_DIR.parent / "scripts" / "deps"
# Where Debian's python3-* packages put modules for /usr/bin/python3.
DEBIAN_MODULE_PATH = ["/usr/lib/python3/dist-packages"]


def imports_of(path):
    """Top-level module names imported by a Python file (absolute imports only)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def third_party_imports():
    """{module: [files importing it]} for modules neither standard nor the tests' own."""
    files = sorted(TESTS_DIR.rglob("*.py"))
    own = {path.stem for path in files}
    found = {}
    for path in files:
        for module in imports_of(path):
            if module in sys.stdlib_module_names or module in own or module == "__future__":
                continue
            found.setdefault(module, []).append(str(path.relative_to(TESTS_DIR)))
    return found


def deps_packages():
    """The package names in scripts/deps' packages=( ... ) list."""
    text = DEPS_SCRIPT.read_text()
    body = re.search(r"^packages=\((.*?)^\)", text, re.S | re.M).group(1)
    words = []
    for line in body.splitlines():
        words += line.split("#", 1)[0].split()
    return set(words)


def owning_package(path):
    result = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return result.stdout.split(":", 1)[0].strip()


class TestDependencies(unittest.TestCase):

    def test_finds_the_imports_it_checks(self):
        # The scan itself: the OpenAPI check imports jsonschema and yaml.
        modules = third_party_imports()
        self.assertIn("jsonschema", modules)
        self.assertIn("yaml", modules)

    def test_every_imported_module_comes_from_a_package_scripts_deps_installs(self):
        packages = deps_packages()
        for module, importers in sorted(third_party_imports().items()):
            with self.subTest(module=module):
                spec = importlib.machinery.PathFinder.find_spec(module, DEBIAN_MODULE_PATH)
                self.assertIsNotNone(
                    spec, f"{module} (imported by {', '.join(importers)}) is not in "
                          f"{DEBIAN_MODULE_PATH[0]}: add its python3-* package to scripts/deps")
                origin = spec.origin if spec.origin not in (None, "namespace") else \
                    list(spec.submodule_search_locations)[0]
                package = owning_package(origin)
                self.assertIsNotNone(package, f"{origin} belongs to no Debian package")
                self.assertIn(package, packages,
                              f"{module} comes from {package}, which scripts/deps does not list")

    def test_runs_with_debians_python(self):
        # What the check above proves holds for this interpreter only.
        self.assertEqual(os.path.realpath(sys.executable),
                         os.path.realpath("/usr/bin/python3"),
                         "the tests must run with Debian's /usr/bin/python3 (tests/CMakeLists.txt "
                         "picks it unless Python3_EXECUTABLE says otherwise)")


if __name__ == "__main__":
    unittest.main()
