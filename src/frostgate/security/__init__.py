"""Keys, scopes, the route table, the auth gate, input limits."""

from frostgate.security.authn import KeyAuthenticator, Principal
from frostgate.security.gate import AuthGate
from frostgate.security.keys import Peppers, new_key, parse_key
from frostgate.security.limits import JsonLimits, parse_json
from frostgate.security.routes import ROUTES, RouteSpec, RouteTable
from frostgate.security.scopes import PLATFORM_SCOPES, TENANT_SCOPES, parse_scopes

__all__ = [
    "PLATFORM_SCOPES",
    "ROUTES",
    "TENANT_SCOPES",
    "AuthGate",
    "JsonLimits",
    "KeyAuthenticator",
    "Peppers",
    "Principal",
    "RouteSpec",
    "RouteTable",
    "new_key",
    "parse_json",
    "parse_key",
    "parse_scopes",
]
