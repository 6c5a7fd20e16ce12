"""The SQLite backend: schema, writer, readers, integrity scan, maintenance."""
