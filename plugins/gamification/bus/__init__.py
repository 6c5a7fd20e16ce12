"""Events: the bus protocol, the in-process bus, the outbox relay, inbound events."""
