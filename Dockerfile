# Two images from one file (tests/test_dockerfile.py keeps them in step with pyproject.toml):
#
#   docker build --target pipeline -t edgepipe:latest .
#       The whole project with TensorFlow, Beam and gs:// support: the Beam SDK worker
#       container (--beam-option sdk_container_image=<registry>/edgepipe:latest), the image of
#       training jobs and of every task of a compiled Kubeflow / Vertex AI pipeline
#       (edgepipe compile; docker run --entrypoint edgepipe edgepipe:latest run configs/...).
#
#   docker build --target serving -t edgepipe-serving:latest .
#       The model server alone: LiteRT, numpy and uvicorn, no TensorFlow. Mount a registry at /models:
#       docker run -p 8501:8501 -v $PWD/artifacts/registry:/models:ro edgepipe-serving:latest

FROM apache/beam_python3.11_sdk:2.77.0 AS pipeline
# The source is built in a folder of its own and removed: a folder named edgepipe/ in the
# working directory would shadow the installed package for `python -m edgepipe`.
COPY pyproject.toml README.md /tmp/edgepipe-src/
COPY edgepipe /tmp/edgepipe-src/edgepipe
COPY pipeline /tmp/edgepipe-src/pipeline
COPY components /tmp/edgepipe-src/components
COPY models /tmp/edgepipe-src/models
COPY serving /tmp/edgepipe-src/serving
COPY contracts /tmp/edgepipe-src/contracts
# Every dependency comes from pyproject.toml: nothing here can drift from it. The gcs extra
# lets every stage use a gs:// artifact root and registry (gcsfs, Beam's GCS I/O).
RUN pip install --no-cache-dir "/tmp/edgepipe-src[gcs]" && rm -rf /tmp/edgepipe-src
# The KFP executor that runs a compiled pipeline's tasks (edgepipe compile), at the version of
# pyproject.toml's kfp extra (the compiling SDK); --no-deps: it needs none of kfp's client
# dependencies to run a task, and must not change the pipeline's requests/urllib3.
RUN pip install --no-cache-dir --no-deps "kfp==2.17.3"
WORKDIR /opt/edgepipe
COPY configs ./configs
COPY data ./data
ENV TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
# The Beam base image's entrypoint (/opt/apache/beam/boot) is kept so the image can be an
# SDK harness.

FROM python:3.11-slim-bookworm AS serving
WORKDIR /opt/edgepipe
# The serving package's only third-party imports, pinned exactly as in pyproject.toml: LiteRT,
# numpy and the HTTP stack (uvicorn with its h11 parser, prometheus_client). Not
# uvicorn[standard]: httptools has no header-size limit.
RUN pip install --no-cache-dir "ai-edge-litert>=2.3,<3" "numpy>=1.26,<3" \
    "uvicorn==0.54.0" "h11==0.16.0" "prometheus-client==0.26.0"
# The server and what it shares with the pipeline (edgepipe.contracts: registry, model
# inputs, tokenizer, LiteRT feeding), laid out as the edgepipe package; nothing else.
COPY edgepipe/__init__.py ./edgepipe/__init__.py
COPY serving ./edgepipe/serving
COPY contracts ./edgepipe/contracts
RUN useradd --system --uid 10001 edgepipe
USER edgepipe
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/opt/edgepipe
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/healthz')"]
# Inside a container the server must listen beyond loopback for -p to reach it. Arguments
# after the image name are appended: --model NAME, --workers N, --api-key-file /run/secrets/key.
ENTRYPOINT ["python", "-m", "edgepipe.serving", "--registry", "/models", "--host", "0.0.0.0", "--port", "8501"]
