"""Crash-safe writes (atomic), safe checkpoint loading and redaction of secrets: the plumbing every other part
uses. Imports nothing else of the package."""
