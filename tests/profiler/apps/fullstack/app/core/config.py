"""Written for the test: the two settings the vendored routes read (the template's Settings needs a full env)."""

import os


class Settings:
    API_V1_STR = "/api/v1"
    SECRET_KEY = "test-only-secret-key-of-32-bytes-or-more"
    SQLALCHEMY_DATABASE_URI = os.environ.get("FULLSTACK_DATABASE_URL", "")


settings = Settings()
