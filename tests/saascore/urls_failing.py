"""A URLconf with views that fail, to prove no stack trace ever reaches a client."""

from django.urls import include, path
from rest_framework.views import APIView


class ExplodingApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("secret internals: /etc/passwd")


def exploding_django_view(request):
    raise ValueError("secret internals: password=hunter2")


urlpatterns = [
    path("api/v1/explode", ExplodingApi.as_view()),
    path("api/v1/explode-plain", exploding_django_view),
    path("", include("saascore.urls")),
]
