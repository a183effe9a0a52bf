"""Writes for tenants, members and API keys. Every tenant-owned write names its tenant."""

import re
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.crypto import constant_time_compare

from tenants.models import KEY_SCHEME, PREFIX_LENGTH, ApiKey, Membership, Tenant, hash_key, new_key
from tenants.scoping import tenant_scope

# last_used_at is a hint for people, not an audit log: write it at most this often.
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_KEY_LENGTH = 128


def tenant_create(*, slug: str, name: str, plan: str = Tenant.Plan.FREE) -> Tenant:
    return Tenant.objects.create(slug=slug, name=name, plan=plan)


def membership_set(*, tenant: Tenant, user, role: str) -> Membership:
    with tenant_scope(tenant):
        membership, _ = Membership.objects.for_tenant(tenant).update_or_create(
            tenant=tenant, user=user, defaults={"role": role}
        )
    return membership


def api_key_create(
    *, tenant: Tenant, name: str, expires_at: datetime | None = None, created_by=None, limits: dict | None = None
) -> tuple[ApiKey, str]:
    """Create a key (``limits``: values of ``LIMIT_FIELDS``); the returned plain key is never
    stored and cannot be shown again."""
    key, prefix = new_key(tenant.pk)
    with tenant_scope(tenant):
        api_key = ApiKey.objects.for_tenant(tenant).create(
            tenant=tenant,
            name=name,
            prefix=prefix,
            hashed_key=hash_key(key),
            expires_at=expires_at,
            created_by=created_by,
            **(limits or {}),
        )
    return api_key, key


def api_key_revoke(*, tenant: Tenant, key_id: int) -> ApiKey:
    """Revoke at once: the next request with the key gets 401. Idempotent."""
    with tenant_scope(tenant):
        api_key = ApiKey.objects.for_tenant(tenant).select_for_update().get(pk=key_id)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_rename(*, tenant: Tenant, key_id: int, name: str) -> ApiKey:
    with tenant_scope(tenant):
        api_key = ApiKey.objects.for_tenant(tenant).get(pk=key_id)
        api_key.name = name
        api_key.save(update_fields=["name"])
    return api_key


# What ``new_key`` makes: the scheme, a tenant id that fits a bigint, a URL-safe secret. Anything
# else (a superscript digit that ``str.isdigit`` accepts and ``int`` refuses, a NUL byte that
# PostgreSQL refuses) never reaches the database.
_KEY_FORMAT = re.compile(rf"{KEY_SCHEME}_([0-9]{{1,18}})_([A-Za-z0-9_-]+)", re.ASCII)


def parse_key(key: str) -> tuple[int, str] | None:
    """(tenant id, secret) of a key of the right shape and length, or None."""
    if len(key) > MAX_KEY_LENGTH:
        return None
    match = _KEY_FORMAT.fullmatch(key)
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


def api_key_verify(*, key: str) -> ApiKey | None:
    """The usable key (with its tenant loaded) that ``key`` is, or None.

    The lookup runs inside the tenant's scope named by the key itself, so it is
    subject to Row-Level Security like every other tenant query.
    """
    if len(key) > MAX_KEY_LENGTH:
        return None
    parsed = parse_key(key)
    if parsed is None:
        return None
    tenant_id, secret = parsed
    now = timezone.now()
    with tenant_scope(tenant_id):
        api_key = (
            ApiKey.objects.for_tenant(tenant_id)
            .select_related("tenant")
            .filter(prefix=secret[:PREFIX_LENGTH], tenant__active=True)
            .first()
        )
        if api_key is None or not constant_time_compare(api_key.hashed_key, hash_key(key)):
            return None
        if not api_key.is_usable(now):
            return None
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.for_tenant(tenant_id).filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
    return api_key


def api_key_touch(*, tenant_id: int, key_id: int, when: datetime) -> None:
    """Note that a key was used (a hint for people: at most once a minute per key and process)."""
    with tenant_scope(tenant_id):
        ApiKey.objects.for_tenant(tenant_id).filter(pk=key_id).update(last_used_at=when)
