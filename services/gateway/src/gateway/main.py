"""The gateway app: REST API, uploads, signed file links and the web client.

Run with `uvicorn gateway.main:app --port 8000 --no-proxy-headers`; with `OPS_PORT` set,
/healthz, /readyz with detail and /metrics are served on that port too (`common.ops`).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from common import ops
from common.errors import error_body, install_error_handlers
from common.logs import configure_logging
from common.request_metrics import RequestMetrics
from common.tokens import Signer
from common.views import API_PREFIX
from gateway import images, openapi, redaction
from gateway.api.main import api_router
from gateway.api.routes import meta
from gateway.core.config import GatewaySettings
from gateway.core.services import Services
from gateway.middleware import (
    SecurityHeaders,
    SessionRequired,
    UploadSizeLimit,
    UploadTooLarge,
    content_security_policy,
)

WEB_DIR = Path(__file__).parent / "web"
# Room for the form's text fields and multipart boundaries beside the photo.
FORM_OVERHEAD_BYTES = 64 * 1024
# Every other request body is a small JSON document.
OTHER_BODY_MAX_BYTES = 1024 * 1024


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    # Before uvicorn's first line, so every line of the process has the one format.
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    redaction.install()
    images.set_pixel_limit(settings.max_image_pixels)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The ops port answers from the start, so probes see a gateway that is starting.
        async with ops.serving(app.state.ops, settings.ops_host, settings.ops_port):
            services = await Services.start(settings)
            app.state.services = services
            try:
                yield
            finally:
                app.state.services = None
                await services.stop()

    app = FastAPI(
        title="Product Videos",
        summary="Turn one product photo into a short marketing video.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.services = None
    app.state.ops = ops.ops_app(lambda: meta.readiness(app))
    app.state.public_readiness = ops.PublicReadiness(lambda: meta.readiness(app))
    install_error_handlers(app)

    @app.exception_handler(UploadTooLarge)
    async def upload_too_large(_: Request, exc: UploadTooLarge) -> JSONResponse:
        error = images.too_large(exc.limit)
        return JSONResponse(
            error_body(error.code, error.message, error.details),
            status_code=413,
        )

    app.include_router(api_router)
    openapi.install(app)
    # Last: everything no route claims is a file of the web client.
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")

    media_origins = []
    if settings.s3_endpoint_url and settings.storage_url.startswith("s3://"):
        media_origins.append(settings.s3_endpoint_url.rstrip("/"))
    # An anonymous upload gets its 401 before any byte of it is read...
    app.add_middleware(SessionRequired, path=f"{API_PREFIX}/jobs", signer=Signer(settings))
    for batch_path in (f"{API_PREFIX}/batches/quote", f"{API_PREFIX}/batches"):
        app.add_middleware(SessionRequired, path=batch_path, signer=Signer(settings))
    # ...and, like every early answer, only after the size cap drained the unread body.
    app.add_middleware(
        UploadSizeLimit,
        path=f"{API_PREFIX}/jobs",
        max_upload_bytes=settings.max_upload_bytes,
        overhead=FORM_OVERHEAD_BYTES,
        other_bodies_max_bytes=OTHER_BODY_MAX_BYTES,
        more_uploads={
            path: settings.batch_manifest_max_bytes + settings.batch_photos_max_bytes
            for path in (f"{API_PREFIX}/batches/quote", f"{API_PREFIX}/batches")
        },
    )
    app.add_middleware(
        SecurityHeaders, csp=content_security_policy(settings.public_ws_url, media_origins)
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After"],
            max_age=600,
        )
    app.add_middleware(RequestMetrics)
    return app


app = create_app()
