"""django-tasks-db's ``db_worker``, which also applies pending cache invalidations.

The worker's ingestions change what answers rest on and invalidate the tenant's
cache after they commit; when Redis does not take that, the invalidation waits in
PostgreSQL (ai/cache/invalidation.py). The worker applies those (its own and any
process's) when it starts and then in the background, as every web worker does,
so they are applied even while no web worker runs.
"""

import logging

from django_tasks_db.management.commands.db_worker import Command as DbWorker

from ai.cache.invalidation import invalidations_sweep, sweeping_start

logger = logging.getLogger("saascore.cache")


class Command(DbWorker):
    def handle(self, *args, **options):
        try:
            invalidations_sweep()
        except Exception:  # the worker starts anyway; its sweeper tries again
            logger.exception("cache invalidation sweep at start failed")
        sweeping_start()
        return super().handle(*args, **options)
