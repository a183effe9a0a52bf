from django.apps import AppConfig


class AiConfig(AppConfig):
    name = "ai"
    verbose_name = "AI gateway"

    def ready(self) -> None:
        # Our matrix products are small (a query against a few thousand vectors)
        # and run on request threads: a second BLAS thread only waits for a core,
        # which under load turns 0.3 ms into a scheduler time slice (8 ms).
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")

        from ai import signals

        signals.connect()
