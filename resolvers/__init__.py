"""Thin resolvers: authorize, call a domain service through a unit of work, return results."""
