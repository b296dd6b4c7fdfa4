"""Catalogues: a manifest of products, an optional zip of their photos and the variants every
product is cut to, validated before anything is stored (docs/catalogues.md)."""
