"""The composition root: the command line now, the FastAPI app in later work.

Owns wiring the library packages together for people: the `jointspace` CLI (typer) and, later, the
HTTP service. The only package allowed to import FastAPI, uvicorn and typer.
"""
