"""Written for the test: the template's ``engine`` (core/db.py), on the test database."""

from sqlmodel import create_engine

from app.core.config import settings

engine = create_engine(str(settings.SQLALCHEMY_DATABASE_URI))
