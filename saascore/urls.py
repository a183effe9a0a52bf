from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from saascore import health, ops

handler400 = "saascore.api.errors.handler400"
handler403 = "saascore.api.errors.handler403"
handler404 = "saascore.api.errors.handler404"
handler500 = "saascore.api.errors.handler500"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("billing/", include("billing.urls")),
    path("api/v1/", include("tenants.api.urls")),
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/", include("ai.api.urls")),
    path("v1/", include("ai.api.openai_urls")),  # the OpenAI-compatible API
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", ops.metrics, name="prometheus-django-metrics"),
]
