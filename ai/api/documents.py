"""The tenant's documents: create, list, read, update, delete, and bulk upload as JSON lines."""

from django.db import IntegrityError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ai.rag.models import Document
from ai.rag.selectors import document_get, document_list
from ai.rag.services import document_create, document_delete, document_update, documents_bulk_upsert
from saascore.api.errors import error_response
from saascore.api.fields import StrictCharField
from saascore.api.parsers import JsonLinesParser
from saascore.api.schema import error_doc
from tenants.authentication import request_tenant

MAX_BULK_DOCUMENTS = 1000
# PostgreSQL's OFFSET is a bigint: a larger one is an error there, so it is a 400 here.
MAX_OFFSET = 2**63 - 1


class DocumentInputSerializer(serializers.Serializer):
    title = StrictCharField(max_length=300)
    content = StrictCharField(max_length=200_000)
    source = StrictCharField(max_length=1000, required=False, allow_blank=True, default="")


class DocumentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    source = serializers.CharField()
    status = serializers.ChoiceField(choices=Document.Status.choices)
    error = serializers.CharField()
    chunk_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class DocumentDetailOutputSerializer(DocumentOutputSerializer):
    content = serializers.CharField()


def _conflict(title: str) -> Response:
    return error_response(409, "conflict", f"A document titled {title!r} already exists.", {"title": title})


_CONFLICT_DOC = error_doc("Another document of the tenant has this title (`details.title`).")


class _Page(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=500, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=MAX_OFFSET, default=0)

    def to_internal_value(self, data):
        # A query string's "limit=" is not an integer (DRF would read it as absent): a 400, as the schema says.
        blank = {name: "A valid integer is required." for name in self.fields if data.get(name) == ""}
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


class DocumentListApi(APIView):
    @extend_schema(
        responses=DocumentOutputSerializer(many=True),
        parameters=[
            _Page,
            OpenApiParameter(
                "X-Total-Count", int, OpenApiParameter.HEADER, response=[200], required=True,
                description="How many documents the tenant has.",
            ),
        ],
        summary="The tenant's documents, newest first (X-Total-Count has the total)",
    )  # fmt: skip
    def get(self, request):
        page = _Page(data=request.query_params)
        page.is_valid(raise_exception=True)
        total, documents = document_list(tenant=request_tenant(request), **page.validated_data)
        return Response(DocumentOutputSerializer(documents, many=True).data, headers={"X-Total-Count": str(total)})

    @extend_schema(request=DocumentInputSerializer, responses={201: DocumentDetailOutputSerializer, 409: _CONFLICT_DOC})
    def post(self, request):
        serializer = DocumentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            document = document_create(tenant=request_tenant(request), **serializer.validated_data)
        except IntegrityError:
            return _conflict(serializer.validated_data["title"])
        document = document_get(tenant=request_tenant(request), document_id=document.pk)
        return Response(DocumentDetailOutputSerializer(document).data, status=status.HTTP_201_CREATED)


class DocumentDetailApi(APIView):
    @extend_schema(responses=DocumentDetailOutputSerializer)
    def get(self, request, document_id: int):
        document = document_get(tenant=request_tenant(request), document_id=document_id)
        return Response(DocumentDetailOutputSerializer(document).data)

    @extend_schema(
        request=DocumentInputSerializer(partial=True),
        responses={200: DocumentDetailOutputSerializer, 409: _CONFLICT_DOC},
    )
    def patch(self, request, document_id: int):
        serializer = DocumentInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tenant = request_tenant(request)
        try:
            document_update(tenant=tenant, document_id=document_id, **serializer.validated_data)
        except IntegrityError:
            return _conflict(serializer.validated_data.get("title", ""))
        return Response(DocumentDetailOutputSerializer(document_get(tenant=tenant, document_id=document_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, document_id: int):
        document_delete(tenant=request_tenant(request), document_id=document_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentBulkOutputSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="Documents whose title was new.")
    updated = serializers.IntegerField(help_text="Documents whose title existed: their content and source replaced.")


class DocumentBulkApi(APIView):
    parser_classes = [JsonLinesParser]

    @extend_schema(
        # Each item of the array is one line of the body: `{"title": ..., "content": ..., "source": ...}`.
        request={"application/x-ndjson": DocumentInputSerializer(many=True)},
        responses={200: DocumentBulkOutputSerializer},
        summary="Create or update documents by title from JSON lines {title, content, source}",
    )
    def post(self, request):
        rows = request.data
        if not isinstance(rows, list) or not rows:
            raise serializers.ValidationError({"body": "one JSON object per line, at least one"})
        if len(rows) > MAX_BULK_DOCUMENTS:
            raise serializers.ValidationError({"body": f"at most {MAX_BULK_DOCUMENTS} documents per upload"})
        errors, clean = {}, []
        for number, row in enumerate(rows, 1):
            serializer = DocumentInputSerializer(data=row if isinstance(row, dict) else {})
            if serializer.is_valid():
                clean.append(serializer.validated_data)
            else:
                errors[f"line {number}"] = serializer.errors
        if errors:
            raise serializers.ValidationError(errors)  # all or nothing: a bad line saves nothing
        created, updated = documents_bulk_upsert(tenant=request_tenant(request), rows=clean)
        return Response({"created": created, "updated": updated})
