"""The application layer: scoring, people, moderation, retries, figures."""
