"""The hit decision's cheap steps: threshold, guards (numbers, negation), evidence agreement."""

import numpy as np
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


def unit(*rows):
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_hit_between_two_cached_questions_that_ask_different_things_is_rivalled():
    judge = HitJudge(ambiguity_margin=0.05)
    query = unit([1.0, 0.0, 0.0])[0]
    # Two cached questions at cosine 0.93 and 0.91 to the query, far from each other (0.69).
    cached = unit([0.93, 0.367, 0.0], [0.91, -0.415, 0.0])
    similarities = cached @ query
    assert judge.rivalled(0, similarities, cached, [(), ()], threshold=0.9)
    assert judge.rivalled(0, similarities, cached, [(3,), (4,)], threshold=0.9)  # about other documents
    assert not judge.rivalled(0, similarities, cached, [(3,), (3, 4)], threshold=0.9)  # the same document
    assert not HitJudge().rivalled(0, similarities, cached, [(), ()], threshold=0.9)  # off by default

    # A paraphrase of the chosen one (their own cosine above the threshold) is no rival.
    twins = unit([0.93, 0.367, 0.0], [0.92, 0.39, 0.03])
    assert not judge.rivalled(0, twins @ query, twins, [(), ()], threshold=0.9)
    # Nor is a candidate further than the margin below.
    apart = unit([0.97, 0.243, 0.0], [0.85, -0.527, 0.0])
    assert not judge.rivalled(0, apart @ query, apart, [(), ()], threshold=0.9)
