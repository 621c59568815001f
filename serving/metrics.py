"""Prometheus metrics through prometheus_client, with its standard collectors.

edgepipe_requests_total{model,version,endpoint,code}          every answered request
edgepipe_request_errors_total{model,version,endpoint,code}    the 4xx and 5xx among them
edgepipe_request_duration_seconds{model,version,endpoint}     histogram of handling time
edgepipe_predict_examples_total{model,version}                examples predicted
edgepipe_model_version{model}                                 the version answering by default
edgepipe_open_connections                                     HTTP connections open now
edgepipe_refused_connections_total                            closed at once: max_connections open
edgepipe_connection_timeouts_total{phase}                     closed for a slow head or body, or
                                                              evicted (phase="evicted")

plus the client library's own process_* (resident memory, CPU seconds, open file
descriptors), python_gc_* and python_info series. Each Metrics has a registry of its own
(a second server in one process, or a test, never collides with the first).
"""

from __future__ import annotations

from typing import Callable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

# No *_created series: they double the scrape and nothing charts them.
prometheus_client.disable_created_metrics()

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LABELS = ("model", "version", "endpoint", "code")


class _ServedVersions:
    """edgepipe_model_version, read from the served models at scrape time."""

    def __init__(self, served_versions: Callable[[], dict[str, int]]):
        self.served_versions = served_versions

    def collect(self):
        family = GaugeMetricFamily("edgepipe_model_version",
                                   "The version that answers requests naming no version.",
                                   labels=["model"])
        for name, version in sorted(self.served_versions().items()):
            family.add_metric([name], version)
        yield family


class Metrics:
    def __init__(self, served_versions: Callable[[], dict[str, int]] = dict,
                 registry: CollectorRegistry | None = None):
        self.registry = registry or _standard_registry()
        self.requests = Counter("edgepipe_requests", "Requests answered, by model, version, "
                                "endpoint and HTTP status.", LABELS, registry=self.registry)
        self.errors = Counter("edgepipe_request_errors", "Requests answered with a 4xx or 5xx "
                              "status.", LABELS, registry=self.registry)
        self.duration = Histogram("edgepipe_request_duration_seconds", "Time from the request "
                                  "head to the response.", LABELS[:3], buckets=BUCKETS,
                                  registry=self.registry)
        self.examples = Counter("edgepipe_predict_examples", "Examples predicted.", LABELS[:2],
                                registry=self.registry)
        self.open_connections = Gauge("edgepipe_open_connections", "HTTP connections open now.",
                                      registry=self.registry)
        self.refused_connections = Counter(
            "edgepipe_refused_connections", "Connections closed at once because max_connections "
            "were open and none could be evicted.", registry=self.registry)
        self.timeouts = Counter("edgepipe_connection_timeouts", "Connections closed because a "
                                "request head or body did not arrive in time, or evicted to make "
                                "room.", ["phase"], registry=self.registry)
        self.registry.register(_ServedVersions(served_versions))

    def observe(self, model: str, version: str, endpoint: str, code: int, seconds: float,
                examples: int = 0) -> None:
        code_text = str(code)
        self.requests.labels(model, version, endpoint, code_text).inc()
        if code >= 400:
            self.errors.labels(model, version, endpoint, code_text).inc()
        self.duration.labels(model, version, endpoint).observe(seconds)
        if examples:
            self.examples.labels(model, version).inc(examples)

    def render(self) -> tuple[bytes, str]:
        """(the text exposition, its content type)."""
        return prometheus_client.generate_latest(self.registry), prometheus_client.CONTENT_TYPE_LATEST


def _standard_registry() -> CollectorRegistry:
    """A registry with the collectors prometheus_client's default one has."""
    registry = CollectorRegistry(auto_describe=True)
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    prometheus_client.GCCollector(registry=registry)
    return registry
