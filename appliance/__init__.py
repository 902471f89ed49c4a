"""Switchboard: the one process that runs a small office's phones."""
