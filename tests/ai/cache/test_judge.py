"""The hit decision's cheap steps: threshold, guards (numbers, negation), evidence agreement."""

import pytest

from ai.cache.judge import HitJudge, guard_veto, numbers


@pytest.mark.parametrize(
    ("query", "candidate", "veto"),
    [
        ("Is 5 a prime number?", "Is 7 a prime number?", "guard_numbers"),
        ("Is the meeting at 10am?", "Is the meeting at 11am?", "guard_numbers"),
        ("Can I take 3.5 mg?", "Can I take 35 mg?", "guard_numbers"),
        ("Can I cancel my plan?", "Can I not cancel my plan?", "guard_negation"),
        ("Why can't I log in?", "Why can I log in?", "guard_negation"),
        # A number inside a name says which thing, not how many: "covid" asks about COVID-19.
        ("What are the symptoms of COVID-19?", "what are covid symptoms", None),
        ("Is H1N1 a flu?", "Is swine flu a flu?", None),
        ("Is vitamin B12 safe?", "is b-twelve safe", None),
        ("How do I reset my password?", "How can I reset my password?", None),
    ],
)
def test_guards_veto_pairs_that_differ_in_a_number_or_a_negation(query, candidate, veto):
    assert guard_veto(query, candidate) == veto


def test_numbers_are_quantities_not_parts_of_names():
    assert numbers("COVID-19 cases in 2020: 1,000 at -5 degrees, 5mg") == {"2020", "1.000", "-5", "5"}


def test_a_candidate_about_another_document_is_refused():
    judge = HitJudge()
    same = judge.judge("How long are dogs pregnant?", "Dog pregnancy length?", 0.9, 0.8,
                       query_documents=(7, 8), candidate_documents=(7,))  # fmt: skip
    other = judge.judge("How long are dogs pregnant?", "How long are cats pregnant?", 0.9, 0.8,
                        query_documents=(7, 8), candidate_documents=(8, 7))  # fmt: skip
    assert same.hit and same.reason == "similar"
    assert not other.hit and other.reason == "evidence_disagrees"
    assert judge.judge("a", "b", 0.79, 0.8).reason == "below_threshold"
