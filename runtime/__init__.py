"""What serving needs without HTTP: the batchers, the model towers behind them, the decoders and
their limits, the one embedding pipeline, the media store, the registries, the captioner, the
generator and the settings. The FastAPI app (service/) builds these parts at start-up and hands
them to its routes; the CLI and the benchmarks drive them directly.

Must not import fastapi, starlette, uvicorn, typer, service, cli or training.
"""
