"""Phone numbers: caller IDs and typed numbers to E.164, and back to a form for people."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

MAX_INPUT = 64  # longer text is not a phone number, and parsing it costs time in the SIP loop


def normalise(raw: str, region: str) -> str | None:
    """E.164 ("+33612345678") or None when not a phone number.

    A national number is read in `region`. Digits that are not a number there are tried as
    an international number without its "+" (trunks often drop it). A number valid in the
    numbering plan wins; one that merely has a possible length is accepted next, so new
    ranges and fictional test numbers still work; local-only and too-short codes are not.
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_INPUT:
        return None
    text = raw.strip()
    candidates = [_parse(text, region)]
    digits = re.sub(r"[\s().-]", "", text)
    if digits.isdigit():
        candidates.append(_parse("+" + digits, region))
    numbers = [n for n in candidates if n is not None]
    for number in numbers:
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    for number in numbers:
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason == phonenumbers.ValidationResult.IS_POSSIBLE:
            return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return None


def display(e164: str) -> str:
    """International format for people ("+33 6 12 34 56 78"); the text itself when it is not E.164."""
    number = _parse(e164, None) if isinstance(e164, str) and e164.startswith("+") else None
    if number is None:
        return e164
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def _parse(text: str, region: str | None) -> PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region.upper() if region else None)
    except NumberParseException:
        return None
