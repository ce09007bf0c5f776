"""Only ``frostgate.security`` reads forwarding headers (audit F12, checked by the gate).

A client can write ``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP`` itself; only the
one client-address function (``security/client_ip.py``) may decide whether to believe
them, and the gate only reads ``X-Forwarded-Proto`` behind a trusted proxy. This test
parses every module under ``src/`` and fails when code outside ``frostgate/security``
names such a header: a string or bytes constant (also spelled as a WSGI/ASGI environ key
or put together with ``+`` or an f-string) or a switch that makes the server trust them
(``proxy_headers=True``, ``forwarded_allow_ips=…``, a proxy-headers middleware). Prose
that mentions a header (a docstring, a setting's description) is not a read and is not
flagged; the detector's own tests below show both sides.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ALLOWED = SRC / "frostgate" / "security"

#: Headers that claim where a request came from. Any ``x-forwarded-*`` counts too.
CLAIM_HEADERS = frozenset(
    {"forwarded", "x-real-ip", "x-client-ip", "true-client-ip", "cf-connecting-ip"}
)
TRUST_SWITCHES = frozenset({"proxy_headers", "forwarded_allow_ips"})
PROXY_MIDDLEWARES = frozenset({"ProxyHeadersMiddleware", "ProxyFix"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _static_text(node: ast.AST) -> str | None:
    """The value of a string/bytes constant, or of ``+``/f-string made only of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        value = node.value
        return value.decode("latin-1") if isinstance(value, bytes) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _static_text(node.left), _static_text(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [_static_text(v) for v in node.values]
        return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
    return None


def header_name(text: str) -> str | None:
    """The forwarding header ``text`` names, if it is exactly one (any case or spelling)."""
    name = text.strip().lower().replace("_", "-")
    if name.startswith("http-"):  # WSGI environ / CGI: HTTP_X_FORWARDED_FOR
        name = name[len("http-") :]
    if name in CLAIM_HEADERS or name.startswith("x-forwarded-"):
        return name
    return None


def forwarding_header_reads(source: str, path: str = "<source>") -> list[Finding]:
    """Every place in ``source`` that names a forwarding header or trusts proxy headers."""
    findings: list[Finding] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        text = _static_text(node)
        if text is not None and (name := header_name(text)) is not None:
            findings.append(Finding(path, node.lineno, f"names header {name!r}"))
        if isinstance(node, ast.keyword) and node.arg in TRUST_SWITCHES:
            is_false = isinstance(node.value, ast.Constant) and node.value.value in (False, None)
            if not is_false:
                findings.append(Finding(path, node.value.lineno, f"sets {node.arg}"))
        named = (
            node.id
            if isinstance(node, ast.Name)
            else node.attr
            if isinstance(node, ast.Attribute)
            else None
        )
        if named in PROXY_MIDDLEWARES:
            findings.append(Finding(path, node.lineno, f"uses {named}"))
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in PROXY_MIDDLEWARES:
                    findings.append(Finding(path, node.lineno, f"imports {alias.name}"))
    return findings


def _scan(paths: list[Path]) -> list[Finding]:
    found: list[Finding] = []
    for path in paths:
        found += forwarding_header_reads(path.read_text(), str(path.relative_to(SRC.parent)))
    return found


def _modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


# --- the rule on the real tree ----------------------------------------------------------


def test_no_module_outside_frostgate_security_reads_forwarding_headers() -> None:
    outside = [p for p in _modules(SRC) if not p.is_relative_to(ALLOWED)]
    assert len(outside) > 20, "the scan must see the whole source tree"
    findings = _scan(outside)
    assert findings == [], "forwarding headers read outside frostgate.security:\n" + "\n".join(
        map(str, findings)
    )


def test_the_scan_sees_the_security_package_read_them() -> None:
    """The same scan finds the reads that are allowed, so it is not blind."""
    files = {Path(f.path).name for f in _scan(_modules(ALLOWED))}
    assert {"client_ip.py", "gate.py"} <= files


# --- the detector ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet",
    [
        'ip = request.headers.get("X-Forwarded-For")',
        'ip = request.headers["x-real-ip"]',
        'proto = headers.get("X-Forwarded-Proto", "http")',
        'hops = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]',
        'value = dict(scope["headers"]).get(b"forwarded")',
        'ip = environ["HTTP_X_FORWARDED_FOR"]',
        'name = "x-forwarded-" + "for"',
        'name = f"X-Real-IP"',
        'host = request.headers.get("x-forwarded-host")',
        'ip = request.headers.get("CF-Connecting-IP")',
        "uvicorn.run(app, proxy_headers=True)",
        "uvicorn.run(app, proxy_headers=settings.behind_proxy)",
        'uvicorn.run(app, forwarded_allow_ips="*")',
        "from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware",
        "app.add_middleware(proxy_headers.ProxyHeadersMiddleware)",
    ],
)
def test_detector_finds_a_forwarding_header_read(snippet: str) -> None:
    assert forwarding_header_reads(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        '"""Trust X-Forwarded-For only behind a trusted proxy."""',
        'Field(default="", description="CIDRs whose X-Forwarded-For is believed")',
        'agent = request.headers.get("user-agent")',
        'row["forwarded_for"] = address.forwarded_for',
        "forwarded = False",
        "uvicorn.run(app, proxy_headers=False)",
        'log.info("client %s", address.forwarded_for)',
    ],
)
def test_detector_ignores_prose_and_other_names(snippet: str) -> None:
    assert forwarding_header_reads(snippet) == [], snippet


def test_detector_reports_file_and_line() -> None:
    source = textwrap.dedent(
        """
        def client(request):
            return request.headers.get("X-Forwarded-For")
        """
    )
    assert [str(f) for f in forwarding_header_reads(source, "api/x.py")] == [
        "api/x.py:3: names header 'x-forwarded-for'"
    ]
