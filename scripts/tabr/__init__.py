"""TabR tooling for tabr-serve: the architecture, preprocessing export and the exporter."""
