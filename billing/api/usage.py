"""Billing for the API key's own tenant: month-to-date summary, usage over time, CSV."""

from datetime import date

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.budgets import budget_status
from billing.exports import usage_csv
from billing.selectors import GROUPS, month_to_date, usage_series, usage_summary
from tenants.authentication import request_tenant

MAX_RANGE_DAYS = 366


class RangeSerializer(serializers.Serializer):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD&group_by=day|model|source|key|user|tag ("from": ``start`` here)."""

    start = serializers.DateField(required=False)
    to = serializers.DateField(required=False)
    group_by = serializers.ChoiceField(choices=list(GROUPS), default="day")

    def to_internal_value(self, data):
        data = {key: data.get(key) for key in data}
        if "from" in data:
            data["start"] = data.pop("from")
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = dict(exc.detail)
            if "start" in detail:
                detail["from"] = detail.pop("start")
            raise serializers.ValidationError(detail) from exc

    def validate(self, attrs):
        default_from, default_to = month_to_date()
        start: date = attrs.get("start", default_from)
        end: date = attrs.get("to", default_to)
        if start > end:
            raise serializers.ValidationError({"from": "must not be after 'to'"})
        if (end - start).days > MAX_RANGE_DAYS:
            raise serializers.ValidationError({"to": f"the range is limited to {MAX_RANGE_DAYS} days"})
        return {"start": start, "end": end, "group_by": attrs["group_by"]}


class TotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    hit_ratio = serializers.FloatField()
    cost = serializers.DecimalField(max_digits=18, decimal_places=10, help_text="USD")
    saved = serializers.DecimalField(max_digits=18, decimal_places=10, help_text="USD")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()


class SummarySerializer(TotalsSerializer):
    start = serializers.DateField(source="from")
    to = serializers.DateField()
    budget = serializers.DictField(help_text="monthly_spend_limit_usd, spent_usd, soft_alert, requests_per_minute")
    by_source = serializers.DictField(child=serializers.IntegerField())
    model_mix = serializers.DictField(child=serializers.IntegerField())


class SeriesRowSerializer(TotalsSerializer):
    key = serializers.CharField(allow_null=True, help_text="The group: a day, model, source, key id, end user or tag")
    label = serializers.CharField(required=False, help_text="group_by=key: the key's name")


_RANGE_PARAMETERS = [
    OpenApiParameter(
        "from", OpenApiTypes.DATE, description="first day, YYYY-MM-DD (default: the 1st of this month, UTC)"
    ),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day, inclusive (default: today, UTC)"),
]


class BillingSummaryApi(APIView):
    @extend_schema(responses=SummarySerializer, parameters=_RANGE_PARAMETERS, summary="Month-to-date billing")
    def get(self, request):
        period = RangeSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        data = period.validated_data
        tenant = request_tenant(request)
        summary = usage_summary(tenant=tenant, start=data["start"], end=data["end"])
        summary["budget"] = budget_status(tenant=tenant)
        return Response(SummarySerializer(summary).data)


class BillingUsageApi(APIView):
    @extend_schema(
        responses=SeriesRowSerializer(many=True),
        parameters=[*_RANGE_PARAMETERS, OpenApiParameter("group_by", str, enum=list(GROUPS))],
        summary="Usage grouped by day, model, source, API key, end user or tag",
    )
    def get(self, request):
        period = RangeSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        series = usage_series(tenant=request_tenant(request), **period.validated_data)
        return Response(SeriesRowSerializer(series, many=True).data)


class CsvRenderer(renderers.BaseRenderer):
    """``text/csv``: with JSON as its only renderer, the CSV endpoint answered ``Accept: text/csv``
    with 406. The view builds the CSV itself; errors stay JSON (``saascore/api/errors.py``)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return str(data).encode(self.charset)


class BillingUsageCsvApi(APIView):
    renderer_classes = [CsvRenderer]
    # DRF's OPTIONS answer describes the view in its first renderer's format, which CSV is not.
    metadata_class = None

    @extend_schema(
        responses={(200, "text/csv"): str},
        parameters=[*_RANGE_PARAMETERS, OpenApiParameter("group_by", str, enum=list(GROUPS))],
        summary="Usage as CSV",
    )
    def get(self, request):
        period = RangeSerializer(data=request.query_params)
        period.is_valid(raise_exception=True)
        data = period.validated_data
        series = usage_series(tenant=request_tenant(request), **data)
        response = HttpResponse(usage_csv(series, data["group_by"]), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="usage-{data["start"]}-{data["end"]}.csv"'
        return response
