"""Lines that are not SIP (the GSM or FXO modem), joined to the box as if they were trunks."""
