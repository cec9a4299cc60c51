"""Helpers shared by the test suites (processes, ports, servers)."""
