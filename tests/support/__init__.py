"""Helpers shared by the test trees (never imported from one test module into another)."""
