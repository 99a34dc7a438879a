"""API routers, one per area (FastAPI "bigger applications" layout)."""
