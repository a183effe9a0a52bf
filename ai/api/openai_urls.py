"""The OpenAI-compatible API, mounted at ``/v1/`` (served on the lean async stack: settings.LEAN_PATHS)."""

from django.urls import path

from ai.api.chat import chat_endpoint
from ai.api.embeddings import embeddings_endpoint
from ai.api.feedback import openai_feedback_endpoint
from ai.api.openai_models import models_endpoint

urlpatterns = [
    path("chat/completions", chat_endpoint, name="openai-chat-completions"),
    path("models", models_endpoint, name="openai-models"),
    path("embeddings", embeddings_endpoint, name="openai-embeddings"),
    path("feedback", openai_feedback_endpoint, name="openai-feedback"),  # saascore's own, for /v1/ callers
]
