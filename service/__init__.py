"""The HTTP service: the FastAPI app factory (service/app.py), one router per resource
(service/routes/), the schemas, the one mapping of request inputs to typed inputs
(service/inputs.py), keys and access, errors, metrics and the contract. The model work, the
batchers, the settings and the limits live in runtime/, whose parts the routes receive as
dependencies (service/deps.py).

The only package that imports FastAPI and uvicorn. It imports runtime/ and the library packages
below it (encoders, index, fusion, housedata for the demo data) and is imported by nothing but
the CLI.
"""
