"""The processes (serve, worker, socket) and what they share: assembly, settings, logs, metrics."""
