"""No module outside ``frostgate.egress`` may import an HTTP client or raw sockets.

The check parses every module of the installed package (imports, not text), so an
``import httpx`` hidden behind an alias or inside a function is found too. The test is
proven to bite by running the same scanner over a module that does import a client.
"""

from __future__ import annotations

import ast
from pathlib import Path

import frostgate

CLIENT_MODULES = frozenset(
    {
        "httpx",
        "httpcore",
        "requests",
        "urllib3",
        "aiohttp",
        "http.client",
        "urllib.request",
        "socket",
        "ssl",
        "pycurl",
        "h11",
        "h2",
    }
)
PACKAGE = Path(frostgate.__file__).parent


def client_imports(source: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [str(node.args[0].value)]
        else:
            continue
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in CLIENT_MODULES):
                found.append(name)
    return found


def test_the_scanner_finds_client_imports() -> None:
    sample = "import httpx as h\nfrom urllib import request\nfrom urllib.request import urlopen\n"
    sample += "def f():\n    import socket\n    __import__('requests')\n"
    assert client_imports(sample) == [
        "httpx",
        "urllib.request",
        "urllib.request",
        "urllib.request.urlopen",
        "socket",
        "requests",
    ]


def test_only_the_egress_package_imports_an_http_client() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "egress":
            continue
        found = client_imports(path.read_text())
        if found:
            offenders[str(relative)] = found
    assert offenders == {}
    assert any(client_imports(p.read_text()) for p in (PACKAGE / "egress").glob("*.py"))
