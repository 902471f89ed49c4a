"""The one outbound policy: whether a number may go out on a paid line, dialled by a person or by the box.

Every outside number passes here: what an extension dials, click-to-call, queue callbacks (from the
caller ID or typed digits), wrap-up callbacks, and later campaigns and forwarding. Toll fraud works by
finding the one path that skips the check, so there is exactly one check.
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Callable

import phonenumbers
from phonenumbers import PhoneNumberType, shortnumberinfo

__all__ = ["DialRights", "Decision", "NumberClassifier", "OutboundPolicy", "PolicySettings",
           "CALLBACK_POLICIES", "KINDS"]

log = logging.getLogger("switchboard.calls.policy")

KINDS = ("emergency", "national", "international", "premium", "satellite")
# How bad a reading is: when a dial string can be read several ways, the worst reading decides.
_RANK = {"emergency": 0, "national": 1, "international": 2, "premium": 3, "satellite": 4}
CALLBACK_POLICIES = ("national", "international", "off")
NUMBER_CHARS = frozenset("0123456789+")
STAR_CHARS = frozenset("*#")
SEPARATORS = " .-()/"
# Global networks (Inmarsat 870, Iridium/Globalstar 881, international networks 882/883) and the
# international premium-rate code 979: the revenue-share fraudster's favourites (CFCA).
SATELLITE_CODES = frozenset({870, 881, 882, 883})
INTERNATIONAL_PREMIUM_CODES = frozenset({979})
_STAR_ZONE = re.compile(r"(?:[*#]+[0-9]{0,3}#?)*")  # *67, *31, #31#, **, *0...: what a provider may strip


@dataclass(frozen=True)
class PolicySettings:
    """The office's box-wide rules for outside numbers ([security] in the provisioning file)."""

    allow_international: bool = False
    allow_premium: bool = False
    allow_satellite: bool = False
    callbacks: str = "national"  # what the box may dial back for an outside caller: national, international, off


@dataclass(frozen=True)
class DialRights:
    """What one dialler may reach: an extension's rights, or the box's own for callbacks."""

    allow_external: bool = True
    allow_international: bool = False
    allow_premium: bool = False
    allow_satellite: bool = False
    who: str = ""


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one number: allowed or not, what kind of number, and why."""

    allowed: bool
    number: str
    kind: str
    reason: str = ""
    status: int = 403

    def __bool__(self) -> bool:
        return self.allowed


@functools.lru_cache(maxsize=64)
def _international_prefix(region: str) -> re.Pattern[str] | None:
    """The region's international call prefix (011 in NANP, 00 in most of Europe) from phonenumbers."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None or not metadata.international_prefix:
        return None
    return re.compile(f"(?:{metadata.international_prefix})")


class NumberClassifier:
    """Sorts a dialled outside number into emergency, national, international, premium or satellite."""

    def __init__(self, region: str = "US", international_prefixes: tuple[str, ...] = ("00", "+")) -> None:
        self.region = (region or "US").upper()
        self.country_code = phonenumbers.country_code_for_region(self.region)
        self.prefixes = tuple(p for p in international_prefixes if p)

    def clean(self, dialled: str) -> str | None:
        """The dial string without visual separators, or None when it has characters no number has."""
        kept = "".join(ch for ch in dialled if ch not in SEPARATORS)
        if not kept or any(ch not in NUMBER_CHARS and ch not in STAR_CHARS for ch in kept):
            return None
        return kept

    def readings(self, cleaned: str) -> list[str]:
        """Every way a provider might read the string once it strips leading star codes (*67, *31+...)."""
        found = []
        for split in range(len(cleaned)):
            head, core = cleaned[:split], cleaned[split:]
            if _STAR_ZONE.fullmatch(head) and core and core[0] not in STAR_CHARS \
                    and all(ch.isdigit() for ch in core.lstrip("+")) and core.count("+") <= 1:
                found.append(core)
        return found

    def classify(self, dialled: str) -> tuple[str, str]:
        """(kind, cleaned number); kind "invalid" when the string is not a number at all."""
        cleaned = self.clean(dialled)
        if cleaned is None:
            return "invalid", dialled
        if cleaned.isdigit() and shortnumberinfo.is_emergency_number(cleaned, self.region):
            return "emergency", cleaned
        readings = self.readings(cleaned)
        if not readings:
            return "invalid", cleaned
        kinds = [self._kind(core) for core in readings]
        return max(kinds, key=_RANK.__getitem__), cleaned

    def _kind(self, core: str) -> str:
        international = self._strip_international(core)
        if international is None:
            return self._national_kind(core)
        try:
            parsed = phonenumbers.parse("+" + international, None)
        except phonenumbers.NumberParseException:
            return "international"
        code = parsed.country_code
        if code in SATELLITE_CODES or phonenumbers.region_code_for_country_code(code) == "001" \
                and code not in INTERNATIONAL_PREMIUM_CODES:
            return "satellite"
        if code in INTERNATIONAL_PREMIUM_CODES or phonenumbers.number_type(parsed) == PhoneNumberType.PREMIUM_RATE:
            return "premium"
        if code == self.country_code:
            return "national"  # +44... dialled from a GB office is a national call
        return "international"

    def _strip_international(self, core: str) -> str | None:
        """The digits after the international prefix, or None when the number is dialled nationally."""
        if core.startswith("+"):
            return core[1:]
        for prefix in self.prefixes:
            if prefix != "+" and core.startswith(prefix):
                return core[len(prefix):]
        pattern = _international_prefix(self.region)
        match = pattern.match(core) if pattern is not None else None
        if match and match.end() > 0:
            return core[match.end():]
        return None

    def _national_kind(self, core: str) -> str:
        try:
            parsed = phonenumbers.parse(core, self.region)
        except phonenumbers.NumberParseException:
            return "national"
        if parsed.country_code != self.country_code:
            return "international"  # phonenumbers read a foreign number into it
        if phonenumbers.number_type(parsed) == PhoneNumberType.PREMIUM_RATE:
            return "premium"
        return "national"


class OutboundPolicy:
    """Decides every outside number, for an extension or for the box itself, with the same classifier."""

    def __init__(self, settings: Callable[[], PolicySettings], region: Callable[[], str],
                 international_prefixes: tuple[str, ...] = ("00", "+")) -> None:
        self._settings = settings
        self._region = region
        self._prefixes = international_prefixes

    def classifier(self) -> NumberClassifier:
        """A classifier for the office's region as provisioned now."""
        return NumberClassifier(self._region(), self._prefixes)

    def rights_of(self, extension: dict) -> DialRights:
        """An extension's dialling rights: its own flags, else the box-wide ones."""
        box = self._settings()
        return DialRights(allow_external=bool(extension.get("allow_external", True)),
                          allow_international=bool(box.allow_international or extension.get("allow_international")),
                          allow_premium=box.allow_premium, allow_satellite=box.allow_satellite,
                          who=f"extension {extension.get('number', '?')}")

    def callback_rights(self) -> DialRights:
        """What the box may dial back for an outside caller, by [security] callbacks."""
        box = self._settings()
        mode = box.callbacks if box.callbacks in CALLBACK_POLICIES else "national"
        return DialRights(allow_external=mode != "off", allow_international=mode == "international",
                          allow_premium=False, allow_satellite=False, who=f"callback policy ({mode})")

    def check(self, number: str, rights: DialRights) -> Decision:
        """Whether `rights` may reach the outside number `number` (as sent to the line, without its prefix)."""
        kind, cleaned = self.classifier().classify(number)
        if kind == "invalid":
            return Decision(False, cleaned, kind, "Address Incomplete (not a phone number)", 484)
        if kind == "emergency":
            return Decision(True, cleaned, kind)
        if not rights.allow_external:
            return Decision(False, cleaned, kind, "Forbidden (external calls not allowed for this extension)")
        if kind == "satellite" and not rights.allow_satellite:
            return Decision(False, cleaned, kind, "Forbidden (satellite and global network numbers not allowed)")
        if kind == "premium" and not rights.allow_premium:
            return Decision(False, cleaned, kind, "Forbidden (premium-rate numbers not allowed)")
        if kind == "international" and not rights.allow_international:
            return Decision(False, cleaned, kind, "Forbidden (international calls not allowed)")
        return Decision(True, cleaned, kind)

    def check_callback(self, number: str, on_behalf_of: dict | None = None, what: str = "callback") -> Decision:
        """Whether the box may dial `number` by itself; logged either way, since nobody watches it happen.

        A callback asked for by an agent (wrap-up, click-to-call) has that agent's extension's rights;
        one asked for by an outside caller has the box's callback policy.
        """
        rights = self.rights_of(on_behalf_of) if on_behalf_of is not None else self.callback_rights()
        decision = self.check(number, rights)
        if decision.allowed:
            log.info("%s to %s allowed: %s number, %s", what, decision.number, decision.kind, rights.who)
        else:
            log.warning("%s to %s refused: %s number, %s: %s", what, decision.number, decision.kind, rights.who,
                        decision.reason)
        return decision
