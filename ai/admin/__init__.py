"""Operator console for the gateway. Operators see every tenant; a tenant admin only their own
(tenants/admin.py, tenants/SCOPING.md)."""

from ai.admin import documents, router, settings, verifier

__all__ = ["documents", "router", "settings", "verifier"]
