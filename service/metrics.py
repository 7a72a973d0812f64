"""Prometheus metrics of the service: requests by route template and status, latency, batch sizes
and times per model and modality, queue depth, the models loaded and their memory, video
decoding (waiting, in progress, frames, seconds), seconds of sound transcribed, pictures
generated, requests in progress, and requests refused by load shedding (at the door and in the
batchers). Route templates (not paths) and served model names label everything, so no collection
or item name reaches a label."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jointspace_requests_total", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "jointspace_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.batch_size = Histogram(
            "jointspace_batch_size", "Inputs per forward pass", ["model", "modality"],
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "jointspace_batch_seconds", "Forward pass time", ["model", "modality"],
            registry=self.registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "jointspace_queue_depth", "Inputs waiting for a batch", ["model", "modality"],
            registry=self.registry,
        )  # fmt: skip
        self.wait_seconds = Histogram(
            "jointspace_wait_seconds", "From a request's arrival to its batch on the model",
            ["model", "modality"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.shed = Counter(
            "jointspace_shed_total", "Inputs refused by load shedding",
            ["model", "modality", "reason"],
            registry=self.registry,
        )  # fmt: skip
        self.in_progress = Gauge(
            "jointspace_requests_in_progress", "POST/PUT requests past the door, not yet answered",
            registry=self.registry,
        )  # fmt: skip
        self.door_refused = Counter(
            "jointspace_door_refused_total",
            "POST/PUT requests refused at the door (429, body not parsed): no turn came in time",
            registry=self.registry,
        )  # fmt: skip
        self.free_bytes = Gauge(
            "jointspace_data_free_bytes", "Free bytes on the data directory's filesystem",
            registry=self.registry,
        )  # fmt: skip
        self.writes_refused = Counter(
            "jointspace_writes_refused_total",
            "Writes refused: reason floor or full (507), io_error (503)",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.videos = Gauge(
            "jointspace_videos", "Videos waiting for a decode worker, and being decoded",
            ["state"], registry=self.registry,
        )  # fmt: skip
        self.video_frames = Counter(
            "jointspace_video_frames_total", "Frames sampled from decoded videos",
            registry=self.registry,
        )  # fmt: skip
        self.video_seconds = Counter(
            "jointspace_video_seconds_total", "Seconds of video decoded", registry=self.registry
        )
        self.speech_seconds = Counter(
            "jointspace_speech_seconds_total", "Seconds of sound transcribed by the recogniser",
            registry=self.registry,
        )  # fmt: skip
        self.generated = Counter(
            "jointspace_generated_images_total", "Pictures drawn by /generate",
            registry=self.registry,
        )  # fmt: skip
        self.model_loaded = Gauge(
            "jointspace_model_loaded", "1 while the model is loaded, 0 while it is not", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.model_bytes = Gauge(
            "jointspace_model_bytes", "Bytes the loaded model's weights take", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.by_key = Counter(
            "jointspace_key_requests_total", "Authorized requests by key name", ["key"],
            registry=self.registry,
        )  # fmt: skip
        self.refused = Counter(
            "jointspace_auth_refused_total", "Requests refused by authorization (401/403/429)",
            ["route", "status"], registry=self.registry,
        )  # fmt: skip

    def video(self, what: str, n: float) -> None:
        """The decoders' video progress: videos waiting for and in the decode workers, frames
        sampled and seconds decoded."""
        if what in ("waiting", "decoding"):
            self.videos.labels(what).inc(n)
        elif what == "frames":
            self.video_frames.inc(n)
        else:
            self.video_seconds.inc(n)

    def wait(self, model: str, modality: str, seconds: float) -> None:
        self.wait_seconds.labels(model, modality).observe(seconds)

    def batch(self, model: str, modality: str, n: int, seconds: float) -> None:
        self.batch_size.labels(model, modality).observe(n)
        self.batch_seconds.labels(model, modality).observe(seconds)

    def shed_jobs(self, model: str, modality: str, n: int, reason: str) -> None:
        self.shed.labels(model, modality, reason).inc(n)

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
