"""Helpers shared by management commands."""

from django.core.management.base import CommandError

from tenants.models import Tenant


def tenant_from_slug(slug: str | None) -> Tenant | None:
    """The tenant a ``--tenant SLUG`` option names (None for no option), or a clear CommandError."""
    if slug is None:
        return None
    try:
        return Tenant.objects.get(slug=slug)
    except Tenant.DoesNotExist:
        raise CommandError(f"No tenant with slug {slug!r}.") from None
