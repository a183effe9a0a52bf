"""Small helpers that make real rows through the services (no fakes)."""

import itertools

from tenants.models import ApiKey, Tenant
from tenants.services import api_key_create, tenant_create

_seq = itertools.count(1)


def make_tenant(slug: str | None = None, **fields) -> Tenant:
    n = next(_seq)
    return tenant_create(slug=slug or f"tenant-{n}", name=fields.pop("name", f"Tenant {n}"), **fields)


def make_key(tenant: Tenant, **fields) -> tuple[ApiKey, str]:
    return api_key_create(tenant=tenant, name=fields.pop("name", "test"), **fields)


def auth(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}
