"""Names, schema and settings shared by every part of Facet (stdlib and pydantic only)."""
