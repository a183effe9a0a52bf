from django.urls import path

from ai.api.documents import DocumentBulkApi, DocumentDetailApi, DocumentListApi
from ai.api.feedback import feedback_endpoint
from ai.api.query import query_endpoint

urlpatterns = [
    path("ai/query", query_endpoint, name="ai-query"),
    path("ai/feedback", feedback_endpoint, name="ai-feedback"),
    path("documents", DocumentListApi.as_view(), name="document-list"),
    path("documents/bulk", DocumentBulkApi.as_view(), name="document-bulk"),
    path("documents/<int:document_id>", DocumentDetailApi.as_view(), name="document-detail"),
]
