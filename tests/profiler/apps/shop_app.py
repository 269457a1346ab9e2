"""The shop as a FastAPI app shaped like real ones: nested routers with prefixes (one with a path parameter),
a mounted sub-app, ``root_path``, an auth dependency doing ``session.get(User)``, async and sync sessions,
``asyncio.gather`` over two sessions in one request, a ``response_model`` serialized from ORM objects, and a
background task. Each route plants one pattern; the tests say which."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, selectinload
from tests.profiler.apps.shop_models import Category, Item, User

from pgpulse.profiler import PgPulseMiddleware


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str


class ItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    owner: UserOut


class UserWithItems(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    items: list[ItemOut]


def create_app(async_engine: AsyncEngine, sync_engine: Engine, **middleware: object) -> FastAPI:
    async def session() -> AsyncIterator[AsyncSession]:
        async with AsyncSession(async_engine, expire_on_commit=False) as s:
            yield s

    def sync_session() -> Iterator[Session]:
        with Session(sync_engine) as s:
            yield s

    AsyncDb = Annotated[AsyncSession, Depends(session)]
    SyncDb = Annotated[Session, Depends(sync_session)]

    async def current_user(db: AsyncDb) -> User:
        user = await db.get(User, 1)  # the auth dependency: the same shape as Item.owner's lazy load
        assert user is not None
        return user

    Me = Annotated[User, Depends(current_user)]

    user_router = APIRouter(prefix="/users/{user_id}")
    api = APIRouter(prefix="/api/v1")

    @api.get("/items/owners")
    async def item_owners(me: Me, db: AsyncDb) -> list[str]:
        items = (await db.scalars(select(Item).where(Item.id <= 8).order_by(Item.id))).all()
        return [(await item.awaitable_attrs.owner).name for item in items]  # OWNER-LAZY

    @api.get("/items/tagged")
    async def tagged(db: AsyncDb) -> int:
        items = (await db.scalars(select(Item).options(selectinload(Item.tags)))).all()
        return sum(len(item.tags) for item in items)

    @api.get("/gather")
    async def gathered() -> list[int]:
        async def tags_of_items() -> int:
            async with AsyncSession(async_engine) as s:
                items = (await s.scalars(select(Item).where(Item.id <= 9).order_by(Item.id))).all()
                total = 0
                for item in items:
                    total += len(await item.awaitable_attrs.tags)  # GATHER-TAGS
                    await asyncio.sleep(0)
                return total

        async def items_of_users() -> int:
            async with AsyncSession(async_engine) as s:
                users = (await s.scalars(select(User).where(User.id <= 7).order_by(User.id))).all()
                total = 0
                for user in users:
                    total += len(await user.awaitable_attrs.items)  # GATHER-ITEMS
                    await asyncio.sleep(0)
                return total

        return list(await asyncio.gather(tags_of_items(), items_of_users()))

    @user_router.get("/items", response_model=UserWithItems)
    def user_items(user_id: int, db: SyncDb) -> User:
        user = db.scalars(select(User).where(User.id == user_id).options(selectinload(User.items))).one()
        return user  # items are eager; each item's owner is lazy-loaded by the serializer (identity map: 0)

    @api.get("/items/serialized", response_model=list[ItemOut])
    def items_serialized(db: SyncDb) -> list[Item]:
        return list(db.scalars(select(Item).where(Item.id <= 10).order_by(Item.id)))

    @api.get("/items/unused-tags")
    async def unused_tags(db: AsyncDb) -> list[str]:
        query = select(Item).where(Item.id <= 20).options(selectinload(Item.tags))
        items = (await db.scalars(query)).all()  # UNUSED-TAGS
        return [item.title for item in items]

    @api.get("/items/background")
    async def background(db: AsyncDb, tasks: BackgroundTasks) -> int:
        items = (await db.scalars(select(Item).where(Item.id <= 20).options(selectinload(Item.tags)))).all()

        def read_tags() -> None:
            sum(len(item.tags) for item in items)  # the task reads what the handler eager-loaded

        tasks.add_task(read_tags)
        return len(items)

    api.include_router(user_router)

    admin = FastAPI()

    @admin.get("/categories/{category_id}/tree")
    async def tree(category_id: int, db: AsyncDb) -> int:
        root = await db.get(Category, category_id)
        assert root is not None
        names = []
        for child in await root.awaitable_attrs.children:
            for grandchild in await child.awaitable_attrs.children:
                for leaf in await grandchild.awaitable_attrs.children:  # TREE-WALK
                    names.append(leaf.name)
        return len(names)

    app = FastAPI()
    app.include_router(api)
    app.mount("/admin", admin)
    app.add_middleware(PgPulseMiddleware, **middleware)  # type: ignore[arg-type]
    return app
