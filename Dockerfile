# The pipeline image: runs `edgepipe` and serves as the Beam SDK worker container and the
# training-job image. Build: docker build --target pipeline -t edgepipe:latest .
# Beam workers: --beam-option sdk_container_image=<registry>/edgepipe:latest
FROM apache/beam_python3.11_sdk:2.77.0 AS pipeline
WORKDIR /opt/edgepipe
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY components ./components
COPY models ./models
RUN pip install --no-cache-dir .
ENV TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
# The Beam base image's entrypoint (/opt/apache/beam/boot) is kept so the image can be an
# SDK harness; for training jobs run: docker run --entrypoint edgepipe edgepipe:latest run ...
