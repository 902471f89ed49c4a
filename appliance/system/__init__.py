"""The box as a service on its own machine: systemd's notify protocol, the clock, updates, backups."""
