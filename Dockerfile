# Two images from one file (tests/test_dockerfile.py keeps them in step with pyproject.toml):
#
#   docker build --target pipeline -t edgepipe:latest .
#       The whole project with TensorFlow and Beam: the Beam SDK worker container
#       (--beam-option sdk_container_image=<registry>/edgepipe:latest) and the image of
#       training jobs (docker run --entrypoint edgepipe edgepipe:latest run configs/...).
#
#   docker build --target serving -t edgepipe-serving:latest .
#       The model server alone: LiteRT and numpy, no TensorFlow. Mount a registry at /models:
#       docker run -p 8501:8501 -v $PWD/artifacts/registry:/models:ro edgepipe-serving:latest

FROM apache/beam_python3.11_sdk:2.77.0 AS pipeline
WORKDIR /opt/edgepipe
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY components ./components
COPY models ./models
COPY serving ./serving
# Every dependency comes from pyproject.toml: nothing here can drift from it.
RUN pip install --no-cache-dir .
ENV TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
# The Beam base image's entrypoint (/opt/apache/beam/boot) is kept so the image can be an
# SDK harness.

FROM python:3.11-slim-bookworm AS serving
WORKDIR /opt/edgepipe
# The serving package's only third-party imports, pinned exactly as in pyproject.toml.
RUN pip install --no-cache-dir "ai-edge-litert>=2.3,<3" "numpy>=1.26,<3"
# components: only the numpy-level helpers the server shares with the pipeline (input
# preparation, tokenising and quantization), so serving and evaluation cannot disagree.
COPY components/__init__.py components/model_inputs.py components/text_tokens.py components/examples_io.py components/litert_measure.py ./components/
COPY serving ./serving
RUN useradd --system --uid 10001 edgepipe
USER edgepipe
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/healthz')"]
# Inside a container the server must listen beyond loopback for -p to reach it. Arguments
# after the image name are appended: --model NAME, --workers N, --api-key-file /run/secrets/key.
ENTRYPOINT ["python", "-m", "serving", "--registry", "/models", "--host", "0.0.0.0", "--port", "8501"]
