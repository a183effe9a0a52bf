import pytest

from ai.cache.pii import iban_valid, luhn_valid, personal_data_kinds


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("write to jane.doe+billing@example.co.uk please", ["email"]),
        ("my card is 4111 1111 1111 1111", ["card_number"]),
        ("card 4111-1111-1111-1111 expired", ["card_number"]),
        ("IBAN GB82 WEST 1234 5698 7654 32", ["iban"]),
        ("send to DE89370400440532013000", ["iban"]),
        ("call +1 (415) 555-2671 tomorrow", ["phone"]),
        ("my number is 020 7946 0958", ["phone"]),
        ("How do I reset my password?", []),
        ("What changed in version 2.4.1 on 2026-11-26?", []),
        ("Is the 4111 plan cheaper than the 9000 plan?", []),
        ("ref 4111 1111 1111 1112 is no card", []),  # fails Luhn, and too long for a phone
    ],
)
def test_personal_data_kinds(text, kinds):
    assert personal_data_kinds(text) == kinds


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")


@pytest.mark.parametrize("hostile", ["x" * 100_000, "a." * 50_000, "ab@" * 30_000, "1-" * 50_000, "DE89" * 25_000])
def test_hostile_input_is_scanned_in_linear_time(hostile):
    # A quadratic pattern would take minutes here and trip the suite's timeout.
    personal_data_kinds(hostile)
