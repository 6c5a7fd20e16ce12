"""Tests of the rank cards."""
