"""Tenant AI settings: ``models``, ``selectors`` (reads), ``services`` (the one writer)."""
