"""The status LEDs: first, so the power LED blinks while the rest starts."""
from __future__ import annotations

from hw.leds import StatusLeds

from ..status_leds import StatusLedPolicy
from . import Context, Teardown


async def setup(ctx: Context) -> Teardown:
    """Drive the four LEDs from the bus."""
    s = ctx.settings
    leds = StatusLeds({"power": s.led_power_pin, "trunk": s.led_trunk_pin, "modem": s.led_modem_pin,
                       "calls": s.led_calls_pin}, s.led_pin_factory)
    # Built before anything that publishes, so no call or trunk event is missed.
    policy = StatusLedPolicy(ctx.bus, leds, trunks=lambda: {
        name: c.status.state for name, c in ctx.trunks.items() if c.row.get("register")})
    ctx.provide(leds=leds, led_policy=policy)

    def teardown() -> None:
        policy.close()
        leds.close()
    return teardown
