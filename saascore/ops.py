"""Who may read the operators' endpoints: ``/metrics`` and the details of ``/health/ready``.

Both tell an attacker things worth knowing (tenant slugs in labels, traffic,
server versions). In development and tests they are open. In production they
need ``Authorization: Bearer <OPS_TOKEN>`` (Prometheus' scrape config sends it
with ``authorization: {credentials: ...}``); without a configured token,
``/metrics`` does not exist (404) and readiness answers its status only, which
is all a load balancer reads.
"""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django_prometheus.exports import ExportToDjangoView

from saascore.api.errors import error_response


def ops_token_given(request: HttpRequest) -> bool:
    token = settings.OPS_TOKEN
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and constant_time_compare(credentials.strip(), token)


def ops_allowed(request: HttpRequest) -> bool:
    return settings.OPS_ENDPOINTS_PUBLIC or ops_token_given(request)


def metrics(request: HttpRequest) -> HttpResponse:
    if ops_allowed(request):
        return ExportToDjangoView(request)
    if not settings.OPS_TOKEN:
        raise Http404("No metrics here.")
    response = error_response(401, "not_authenticated", "/metrics needs the operators' bearer token (OPS_TOKEN).")
    response["WWW-Authenticate"] = 'Bearer realm="ops"'
    return response
