"""Tender search service: FastAPI over the Chroma collection the pipeline fills."""
