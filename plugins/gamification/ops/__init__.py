"""Operator tools: the command line, the Prometheus collector, the demo."""
