"""API key authentication: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

The tenant comes from the key on every request, never from anything the client
says about itself.
"""

from dataclasses import dataclass

from rest_framework import authentication, exceptions

from saascore.logs import tenant_id_var
from saascore.redis.guard import shared_guard
from tenants.key_cache import aapi_key_verify
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_verify


@dataclass(frozen=True)
class ApiClient:
    """``request.user`` for a request authenticated by an API key."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    @property
    def tenant(self) -> Tenant:
        return self.api_key.tenant


def key_from_headers(meta: dict) -> str | None:
    header = meta.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return meta.get("HTTP_X_API_KEY", "").strip() or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        key = key_from_headers(request.META)
        if key is None:
            return None
        api_key = api_key_verify(key=key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
        tenant_id_var.set(api_key.tenant_id)  # log lines from here on name the tenant
        return ApiClient(api_key), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


async def aauthenticate(request) -> ApiClient:
    """The async path's API-key authentication (tenants/key_cache.py: no SQL in steady state).

    Raises DRF's NotAuthenticated (no key) or AuthenticationFailed (a bad one): 401.
    Sets ``request.user`` and ``request.auth`` as DRF would.
    """
    key = key_from_headers(request.META)
    if key is None:
        raise exceptions.NotAuthenticated()
    api_key = await aapi_key_verify(key=key, guard=shared_guard())
    if api_key is None:
        raise exceptions.AuthenticationFailed("The API key is invalid, revoked or expired.")
    tenant_id_var.set(api_key.tenant_id)  # log lines from here on name the tenant
    request.user, request.auth = ApiClient(api_key), api_key
    return request.user


def request_tenant(request) -> Tenant:
    """The tenant of an authenticated API request."""
    return request.user.tenant
