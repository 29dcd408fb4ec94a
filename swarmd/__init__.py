"""swarmd, the daemon on every host (entry point: swarmd.main:main)."""
