"""The Chroma projection: events → record operations, state and checkpoint, rebuild, verify."""
