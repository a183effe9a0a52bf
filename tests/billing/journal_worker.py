"""A process that answers cache hits of one tenant through the ledger's journal, then waits to
be killed (tests/billing/test_journal.py).

    python -m tests.billing.journal_worker TENANT_ID COUNT [--stalled] [--unsettled]

Prints ``<request id> <saved>`` per answered hit as it answers, ``committed`` once the
writer has written every row (unless ``--stalled``: the test holds a lock the commit waits
on), then ``answered``, and blocks until killed. ``--unsettled``: the journal keeps every row
after its commit, as it does when a worker dies between the commit and the settling.
"""

import asyncio
import sys

import django

django.setup()

from billing import group_commit  # noqa: E402
from billing.services import Usage  # noqa: E402

# The test's lock, not the writer's bound, decides how long the commit waits.
group_commit.WRITE_TIMEOUT = 600.0


async def answer(tenant_id: int, count: int) -> None:
    for n in range(count):
        usage = Usage(
            request_id=f"hit-{n}", source="cache_exact", model="gpt-4o-mini",
            saved_input_tokens=1000, saved_output_tokens=100,
        )  # fmt: skip
        row = await group_commit.ledger.arecord(tenant_id=tenant_id, usage=usage, journaled=True)
        print(row["request_id"], row["saved"], flush=True)


def main(argv: list[str]) -> None:
    tenant_id, count = int(argv[0]), int(argv[1])
    if "--unsettled" in argv:
        group_commit.journal.settle = lambda segment: None
    asyncio.run(answer(tenant_id, count))
    if "--stalled" not in argv:
        assert group_commit.ledger.wait_idle(timeout=60)
        print("committed", flush=True)
    print("answered", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1:])
