"""Prometheus metrics in the text exposition format (no client library: a few counters).

edgepipe_requests_total{model,version,endpoint,code}       every answered request
edgepipe_request_errors_total{model,version,endpoint,code}  the 4xx and 5xx among them
edgepipe_request_duration_seconds{model,version,endpoint}   histogram of handling time
edgepipe_predict_examples_total{model,version}              examples predicted
edgepipe_model_version{model}                               the version answering by default
"""

from __future__ import annotations

import bisect
import threading

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = {}
        self.durations: dict[tuple, list] = {}  # labels -> [bucket counts..., sum, count]
        self.examples: dict[tuple, int] = {}

    def observe(self, model: str, version: str, endpoint: str, code: int, seconds: float,
                examples: int = 0) -> None:
        with self._lock:
            key = (model, version, endpoint, str(code))
            self.requests[key] = self.requests.get(key, 0) + 1
            series = self.durations.setdefault((model, version, endpoint), [0] * (len(BUCKETS) + 2))
            bucket = bisect.bisect_left(BUCKETS, seconds)  # the first bound >= seconds
            if bucket < len(BUCKETS):  # slower than every bound: counted only in +Inf
                series[bucket] += 1
            series[-2] += seconds
            series[-1] += 1
            if examples:
                self.examples[(model, version)] = self.examples.get((model, version), 0) + examples

    def render(self, served_versions: dict[str, int]) -> str:
        with self._lock:
            requests = dict(self.requests)
            durations = {key: list(value) for key, value in self.durations.items()}
            examples = dict(self.examples)
        lines = [
            "# HELP edgepipe_requests_total Requests answered, by model, version, endpoint and HTTP status.",
            "# TYPE edgepipe_requests_total counter",
        ]
        names = ("model", "version", "endpoint", "code")
        lines += [f"edgepipe_requests_total{_labels(names, key)} {count}" for key, count in sorted(requests.items())]
        lines += [
            "# HELP edgepipe_request_errors_total Requests answered with a 4xx or 5xx status.",
            "# TYPE edgepipe_request_errors_total counter",
        ]
        lines += [f"edgepipe_request_errors_total{_labels(names, key)} {count}"
                  for key, count in sorted(requests.items()) if int(key[3]) >= 400]
        lines += [
            "# HELP edgepipe_request_duration_seconds Time from the request line to the response.",
            "# TYPE edgepipe_request_duration_seconds histogram",
        ]
        for key, series in sorted(durations.items()):
            cumulative = 0
            for bound, count in zip(BUCKETS, series):
                cumulative += count
                lines.append(f"edgepipe_request_duration_seconds_bucket{_labels(names[:3] + ('le',), (*key, str(bound)))} {cumulative}")
            lines.append(f"edgepipe_request_duration_seconds_bucket{_labels(names[:3] + ('le',), (*key, '+Inf'))} {series[-1]}")
            lines.append(f"edgepipe_request_duration_seconds_sum{_labels(names[:3], key)} {series[-2]:.6f}")
            lines.append(f"edgepipe_request_duration_seconds_count{_labels(names[:3], key)} {series[-1]}")
        lines += [
            "# HELP edgepipe_predict_examples_total Examples predicted.",
            "# TYPE edgepipe_predict_examples_total counter",
        ]
        lines += [f"edgepipe_predict_examples_total{_labels(names[:2], key)} {count}" for key, count in sorted(examples.items())]
        lines += [
            "# HELP edgepipe_model_version The version that answers requests naming no version.",
            "# TYPE edgepipe_model_version gauge",
        ]
        lines += [f"edgepipe_model_version{_labels(('model',), (name,))} {version}" for name, version in sorted(served_versions.items())]
        return "\n".join(lines) + "\n"


def _labels(names: tuple, values: tuple) -> str:
    pairs = ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
