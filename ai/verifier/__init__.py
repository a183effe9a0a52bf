"""The hit verifier: a second opinion on borderline semantic hits, learnt from labelled pairs."""
