"""The template's app/main.py without Sentry, CORS and the frontend, plus pgpulse's two README lines."""

from fastapi import FastAPI

from app.api.main import api_router
from app.core.config import settings
from app.core.db import engine
from pgpulse.profiler import PgPulseMiddleware, instrument

app = FastAPI(title="full-stack-fastapi-template", openapi_url=f"{settings.API_V1_STR}/openapi.json")
app.include_router(api_router, prefix=settings.API_V1_STR)

instrument(engine)  # pgpulse: the README's two lines
app.add_middleware(PgPulseMiddleware)
