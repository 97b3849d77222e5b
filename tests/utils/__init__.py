"""Helpers shared by the tests: data builders (factories) and backing services (services)."""
