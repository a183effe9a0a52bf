"""Usage as CSV, for the API's export and the dashboard's download alike."""

import csv
import io

CSV_COLUMNS = ["key", "requests", "hits", "misses", "hit_ratio", "cost", "saved", "input_tokens", "output_tokens"]


def usage_csv(series: list[dict], group_by: str) -> str:
    """``usage_series`` rows as CSV, the first column named after the grouping."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([group_by, *CSV_COLUMNS[1:]])
    for row in series:
        writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def _cell(value):
    """A caller's value (an end user, a tag) never starts a spreadsheet formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
