"""Redis for the whole product: the client pool, the guard every request-path call goes
through (with its circuit breaker), what the server supports, and every key family."""
