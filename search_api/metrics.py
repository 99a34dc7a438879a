"""Prometheus metrics on a registry owned by each app (tests build many apps in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("search_api_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("search_api_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.search_stage = Histogram("search_api_search_stage_seconds", "Time per search stage",
                                      ["stage"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.feedback = Counter("search_api_feedback_total", "Feedback ratings recorded", ["rating"],
                                registry=self.registry)
        self.ready = Gauge("search_api_ready", "1 when Chroma and the embedder are usable",
                           registry=self.registry)
        self.ask_gemini = AskGeminiUsage()
        self.registry.register(self.ask_gemini)


class AskGeminiUsage:
    """Gemini use by "Ask about this tender" since the process started, read from the asker's meter at
    each scrape (the enrichment run summary's requests, retries, tokens and estimated cost, for the API).
    ``source`` is set once the services exist; all zero in the offline mode."""

    def __init__(self) -> None:
        self.source: Callable[[], dict[str, float]] = dict

    def collect(self) -> Iterator[Metric]:
        usage = self.source() or {}
        for name, key, help_text in (
            ("requests", "requests", "Gemini requests made to answer questions (failed ones included)"),
            ("failed_requests", "failed_requests", "Gemini requests that failed"),
            ("retries", "retries", "Gemini requests retried"),
            ("estimated_cost_usd", "estimated_cost_usd", "Estimated Gemini cost in USD (GEMINI_PRICE_* settings)"),
        ):
            yield CounterMetricFamily(f"search_api_ask_gemini_{name}", help_text, value=float(usage.get(key, 0)))
        tokens = CounterMetricFamily("search_api_ask_gemini_tokens", "Gemini tokens used to answer questions",
                                     labels=["kind"])
        for kind in ("input", "output", "cached"):
            tokens.add_metric([kind], float(usage.get(f"{kind}_tokens", 0)))
        yield tokens


class MetricsMiddleware:
    """Counts and times every request, labelled by the route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, label, str(status["code"])).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - started)
