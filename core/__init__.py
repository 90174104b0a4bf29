"""The plugin contract and its machinery: hooks, registry, discovery, config, CLI."""
