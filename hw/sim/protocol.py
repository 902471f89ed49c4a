"""What the simulated modem says and when: its dialects, frame timing, outcomes and error texts."""
from __future__ import annotations

import re

from ..modem import dialects

DIALECTS = tuple(dialects.DIALECTS)  # the driver's: the simulator plays each of them
SIM_STATES = ("READY", "SIM PIN", "SIM PUK", "ABSENT")
FRAME = 320
TICK = 0.020
OUTCOMES = ("answer", "busy", "no-answer", "no-carrier")
_OUTCOME_WORD = {"busy": "BUSY", "no-answer": "NO ANSWER", "no-carrier": "NO CARRIER"}
_CMD = re.compile(r"^AT([+^][A-Z0-9]+)(=\?|\?|=(.*))?$")
_CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
             11: "SIM PIN required", 12: "SIM PUK required", 30: "no network service",
             50: "Incorrect parameters", 100: "unknown"}
# ^DSCI numbers states its own way (Quectel): 2 dialing, 7 alerting, 3 active, 4 incoming, 6 released.
_DSCI = {2: 2, 3: 7, 0: 3, 4: 4, 6: 6}
