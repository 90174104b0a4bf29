"""The code that runs inside a sandbox: framing, execution engine, session holder, zygote.

This package is self-contained (standard library plus whatever optional modules the
sandbox has: numpy, PIL, matplotlib, ...) and never imports codedance, so every
backend can ship it as plain files: the local backend binds it read-only into
bubblewrap, Docker and E2B copy it into the container.
"""
