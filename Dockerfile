# CPU image of jointspace. For a GPU image start FROM an nvidia/cuda runtime with Python 3.11,
# install the same way, then `pip uninstall -y faiss-cpu && pip install '.[gpu]'`, and run the
# container with `--gpus all`: the encoders pick CUDA and bf16 by themselves.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY encoders encoders
COPY training training
COPY index index
COPY fusion fusion
COPY generation generation
COPY jobs jobs
COPY service service
RUN pip install '.[demo]'

RUN useradd --create-home jointspace && mkdir -p /cache/huggingface && chown -R jointspace /cache
USER jointspace
ENTRYPOINT ["jointspace"]
CMD ["models"]
