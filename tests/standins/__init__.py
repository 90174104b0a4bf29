"""Stand-ins for services that do not run on the test machine (the Docker Engine)."""
