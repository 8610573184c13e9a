"""Jacobian, Lipschitz and conditioning tools used by notebooks and tests."""

__all__: list[str] = []
