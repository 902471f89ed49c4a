"""Hardware behind small interfaces: modem lines and status LEDs. Never imports appliance."""
