"""django-tasks-db's ``db_worker``, which also sweeps pending cache invalidations.

The worker's ingestions change what answers rest on and invalidate the tenant's
cache after they commit; when Redis does not take that, the invalidation waits in
PostgreSQL (ai/cache/invalidation.py). The worker applies those (its own and any
process's) in the background, as every web worker does, so they are applied even
when no web worker is running.
"""

from django_tasks_db.management.commands.db_worker import Command as DbWorker


class Command(DbWorker):
    def handle(self, *args, **options):
        from ai.cache.sweeper import sweeper_start

        sweeper_start()
        return super().handle(*args, **options)
