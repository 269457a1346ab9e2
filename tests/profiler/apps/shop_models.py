"""A small shop: many-to-one (Item.owner), one-to-many (User.items), many-to-many (Item.tags) and a
self-referential tree (Category.children / Category.parent). Seeded with more items than selectinload's
IN-list chunk (500) so eager batches are several queries."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(AsyncAttrs, DeclarativeBase):
    pass


item_tags = Table(
    "item_tags",
    Base.metadata,
    Column("item_id", ForeignKey("items.id"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    items: Mapped[list[Item]] = relationship(back_populates="owner")


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    owner: Mapped[User] = relationship(back_populates="items")
    tags: Mapped[list[Tag]] = relationship(secondary=item_tags)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    children: Mapped[list[Category]] = relationship(back_populates="parent")
    parent: Mapped[Category | None] = relationship(back_populates="children", remote_side=[id])


USERS = 12  # users 1..11 own items; user 12 owns none (empty collections)
ITEMS = 1200  # > 2 IN-list chunks of 500 when every item's tags are selectin-loaded
TAGS = 5
# A tree three levels below one root: 1 root, 3 children, 9 grandchildren, 27 great-grandchildren.
TREE_FANOUT = 3
TREE_LEVELS = 4


async def create_and_seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.execute(insert(User), [{"id": i, "name": f"user {i}"} for i in range(1, USERS + 1)])
        await conn.execute(
            insert(Item),
            [{"id": i, "title": f"item {i}", "owner_id": 1 + i % (USERS - 1)} for i in range(1, ITEMS + 1)],
        )
        await conn.execute(insert(Tag), [{"id": i, "name": f"tag {i}"} for i in range(1, TAGS + 1)])
        await conn.execute(insert(item_tags), [{"item_id": i, "tag_id": 1 + i % TAGS} for i in range(1, ITEMS + 1)])
        rows = [{"id": 1, "name": "root", "parent_id": None}]
        level = [1]
        for _ in range(TREE_LEVELS - 1):
            nxt = []
            for parent in level:
                for _ in range(TREE_FANOUT):
                    new_id = len(rows) + 1
                    rows.append({"id": new_id, "name": f"category {new_id}", "parent_id": parent})
                    nxt.append(new_id)
            level = nxt
        await conn.execute(insert(Category), rows)
        await conn.execute(text("ANALYZE"))
