"""Every route of the API. Each router carries its full path prefix, so a route's
`path` is its whole template (metrics label requests by it)."""

from fastapi import APIRouter, Depends

from common.logs import bind_job_id
from gateway.api.routes import (
    api_keys,
    auth,
    batches,
    files,
    job_actions,
    jobs,
    meta,
    webhook_endpoints,
    webhooks,
)

# A route with a `{job_id}` logs it on every line (common.logs).
api_router = APIRouter(dependencies=[Depends(bind_job_id)])
api_router.include_router(auth.router)
api_router.include_router(api_keys.router)
api_router.include_router(jobs.router)
api_router.include_router(job_actions.router)
api_router.include_router(batches.router)
api_router.include_router(files.router)
api_router.include_router(webhooks.router)
api_router.include_router(webhook_endpoints.router)
api_router.include_router(meta.config_router)
api_router.include_router(meta.probes_router)
