"""Content negotiation: DRF's, except that an unknown ``?format=`` is a 406, not a 404.

DRF answers ``?format=xml`` on a JSON-only view with 404, as if the endpoint did not
exist; the client asked for a representation the endpoint cannot produce, which is
what 406 means and what an unsatisfiable ``Accept`` header already gets.
"""

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class ContentNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers, format):
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            formats = sorted({renderer.format for renderer in renderers if renderer.format})
            raise NotAcceptable(f"No representation in that format; this endpoint has: {', '.join(formats)}.")
        return matching
