"""Personal data that must never be cached: emails, phone numbers, payment card
numbers (Luhn-valid) and IBANs (mod-97-valid).

Detection errs towards "personal": a false positive costs one uncached answer,
a false negative could serve one person's data to another.

Contact details that stand in the tenant's own documents (a support address, a
helpline) are the tenant's published data, not a user's: an answer that repeats
them from its sources may be cached (``personal_data_outside``). Personal data in
the query, or in an answer but not in the sources it was built from, still is.
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


def _findings(text: str) -> list[tuple[str, str]]:
    """(kind, canonical value) of every piece of personal data in ``text``: emails
    case-folded, numbers as their digits (so "+1 555-0100" is "15550100" wherever it stands)."""
    found = [("email", match.group().casefold()) for match in _EMAIL.finditer(text)]
    ibans = [match for match in _IBAN.finditer(text) if iban_valid(match.group())]
    found += [("iban", match.group().replace(" ", "").upper()) for match in ibans]
    for match in _DIGIT_RUN.finditer(text):
        raw = match.group().strip()
        if _DATE.match(raw) or any(iban.start() <= match.start() < iban.end() for iban in ibans):
            continue
        digits = re.sub(r"\D", "", raw)
        if _CARD_MIN_DIGITS <= len(digits) <= _CARD_MAX_DIGITS and luhn_valid(digits):
            found.append(("card_number", digits))
        elif _PHONE_MIN_DIGITS <= len(digits) <= _PHONE_MAX_DIGITS:
            # A bare long number may be an order id; counted as a phone all the same.
            found.append(("phone", digits))
    return found


def _kinds(findings: list[tuple[str, str]]) -> list[str]:
    return list(dict.fromkeys(kind for kind, _ in findings))


def personal_data_kinds(text: str) -> list[str]:
    """The kinds of personal data found in ``text`` (empty when none)."""
    return _kinds(_findings(text))


def personal_data_outside(text: str, sources: list[str]) -> list[str]:
    """The kinds of personal data in ``text`` that none of ``sources`` (the tenant's own
    document passages the text was built from) contains."""
    found = _findings(text)
    if not found:  # the common case: no source need be read
        return []
    published = {value for source in sources for _, value in _findings(source)}
    return _kinds([(kind, value) for kind, value in found if value not in published])


def contains_personal_data(*texts: str) -> bool:
    return any(personal_data_kinds(text) for text in texts)
