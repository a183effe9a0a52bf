"""The tenant billing dashboard (Django templates, session login).

Members see their own tenants only; operators pick any tenant. Which tenants a
user may see is decided by tenants/access.py; a tenant the user may not see is a
404, as if it did not exist.
"""

from datetime import date, timedelta

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.budgets import budget_status
from billing.charts import horizontal_bars, stacked_bars
from billing.exports import usage_csv
from billing.selectors import (
    month_to_date,
    top_cached_questions,
    usage_by_day_and_source,
    usage_series,
    usage_summary,
)
from tenants.access import visible_tenant_or_404
from tenants.models import Tenant


class RangeForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")

    def range(self) -> tuple[date, date]:
        default_from, default_to = month_to_date()
        if not self.is_valid():
            return default_from, default_to
        start = self.cleaned_data.get("start") or default_from
        end = self.cleaned_data.get("end") or default_to
        if start > end or (end - start).days > 366:
            return default_from, default_to
        return start, end


def _tenant(request: HttpRequest) -> tuple[Tenant, list[Tenant]]:
    return visible_tenant_or_404(request.user, slug=request.GET.get("tenant"))


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


TOP_ROWS = 10  # keys and end users on the dashboard, costliest first


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant, tenants = _tenant(request)
    form = RangeForm(request.GET)
    start, end = form.range()
    summary = usage_summary(tenant=tenant, start=start, end=end)
    daily = {row["key"]: row for row in usage_series(tenant=tenant, start=start, end=end, group_by="day")}
    by_source_daily = usage_by_day_and_source(tenant=tenant, start=start, end=end)
    days = _days(start, end)
    labels = [d.strftime("%d %b") for d in days]
    context = {
        "tenant": tenant,
        "tenants": tenants,
        "form": form,
        "start": start,
        "end": end,
        "summary": summary,
        "top_questions": top_cached_questions(tenant=tenant, start=start, end=end),
        "by_key": usage_series(tenant=tenant, start=start, end=end, group_by="key", limit=TOP_ROWS),
        "top_users": usage_series(tenant=tenant, start=start, end=end, group_by="user", limit=TOP_ROWS),
        "budget": budget_status(tenant=tenant),
        "requests_chart": stacked_bars(
            "Requests per day by source",
            labels,
            {
                s: [by_source_daily.get((d, s), 0) for d in days]
                for s in ("llm", "cache_exact", "cache_semantic", "error")
            },
        ),
        "spend_chart": stacked_bars(
            "Spend per day (USD)",
            labels,
            {"llm": [float(daily[d]["cost"]) if d in daily else 0.0 for d in days]},
            fmt=lambda v: f"${v:.4f}",
        ),
        "model_chart": horizontal_bars("Model mix (answered by an LLM)", summary["model_mix"]),
    }
    return render(request, "billing/dashboard.html", context)


@login_required
def dashboard_csv(request: HttpRequest) -> HttpResponse:
    tenant, _ = _tenant(request)
    start, end = RangeForm(request.GET).range()
    series = usage_series(tenant=tenant, start=start, end=end, group_by="day")
    response = HttpResponse(usage_csv(series, "day"), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{tenant.slug}-usage-{start}-{end}.csv"'
    return response
