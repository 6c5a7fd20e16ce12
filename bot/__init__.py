"""The bot host: configuration, plugin registry, dispatcher, scheduler and command line."""
