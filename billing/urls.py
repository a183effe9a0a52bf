from django.urls import path

from billing.views import dashboard, dashboard_csv

urlpatterns = [
    path("", dashboard, name="billing-dashboard"),
    path("usage.csv", dashboard_csv, name="billing-dashboard-csv"),
]
