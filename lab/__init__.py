"""Test-lab tooling for netmedic.k8s (not part of the built collection)."""
