import pytest

from ai.router.examples import forget_example_sets
from ai.router.io import STARTER_EXAMPLES, parse_lines, router_examples_import
from ai.router.table import forget_route_tables


@pytest.fixture(autouse=True)
def fresh_router_caches():
    forget_example_sets()
    forget_route_tables()
    yield
    forget_example_sets()
    forget_route_tables()


@pytest.fixture
def starter_examples(transactional_db):  # global rows: written on the unscoped connection
    router_examples_import(rows=parse_lines(STARTER_EXAMPLES.read_text().splitlines()), tenant=None)
