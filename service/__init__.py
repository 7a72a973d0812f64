"""The HTTP service: the FastAPI app factory (service/app.py), one router per resource
(service/routes/), the engine with its dynamic batchers, settings, keys and limits.

The only package that imports FastAPI and uvicorn. It imports the library packages below it
(encoders, index, fusion, training for the demo data) and is imported by nothing but the CLI.
"""
