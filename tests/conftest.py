"""Shared fixtures. Tests that need a real peer (Java, Go, kcat) skip locally when it is missing, but fail under CI=true."""
