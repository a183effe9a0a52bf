"""Personal data that must never be cached: emails, phone numbers, payment card
numbers (Luhn-valid) and IBANs (mod-97-valid).

Detection errs towards "personal": a false positive costs one uncached answer,
a false negative could serve one person's data to another.
"""

import re

# Quantifiers are bounded (RFC 5321 limits) so that hostile input stays linear.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
# A run of digits with optional separators: the candidates for phones and cards.
_DIGIT_RUN = re.compile(r"(?<![\w])\+?\d[\d\s().-]{6,24}\d(?![\w])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_PHONE_MIN_DIGITS, _PHONE_MAX_DIGITS = 9, 15
_CARD_MIN_DIGITS, _CARD_MAX_DIGITS = 13, 19
# Things that look like digit runs but are not personal: years and dates, amounts.
_DATE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def personal_data_kinds(text: str) -> list[str]:
    """The kinds of personal data found in ``text`` (empty when none)."""
    kinds: list[str] = []
    if _EMAIL.search(text):
        kinds.append("email")
    ibans = [match.span() for match in _IBAN.finditer(text) if iban_valid(match.group())]
    if ibans:
        kinds.append("iban")
    for match in _DIGIT_RUN.finditer(text):
        raw = match.group().strip()
        if _DATE.match(raw) or any(start <= match.start() < end for start, end in ibans):
            continue
        digits = re.sub(r"\D", "", raw)
        if _CARD_MIN_DIGITS <= len(digits) <= _CARD_MAX_DIGITS and luhn_valid(digits):
            if "card_number" not in kinds:
                kinds.append("card_number")
        elif _PHONE_MIN_DIGITS <= len(digits) <= _PHONE_MAX_DIGITS and "phone" not in kinds:
            # A bare long number may be an order id; counted as a phone all the same.
            kinds.append("phone")
    return kinds


def contains_personal_data(*texts: str) -> bool:
    return any(personal_data_kinds(text) for text in texts)
