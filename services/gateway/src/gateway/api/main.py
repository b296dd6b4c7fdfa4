"""Every route of the API. Each router carries its full path prefix, so a route's
`path` is its whole template (metrics label requests by it)."""

from fastapi import APIRouter

from gateway.api.routes import files, jobs, meta

api_router = APIRouter()
api_router.include_router(jobs.router)
api_router.include_router(files.router)
api_router.include_router(meta.config_router)
api_router.include_router(meta.probes_router)
