"""The template's app/api/main.py, with the items router only (the others need e-mail and password hashing)."""

from fastapi import APIRouter

from app.api.routes import items

api_router = APIRouter()
api_router.include_router(items.router)
