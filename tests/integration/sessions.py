"""A WebSocket session that records every frame it receives, for assertions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from urllib.parse import quote

import websockets


class Session:
    def __init__(self, name: str, socket):
        self.name = name
        self.socket = socket
        self.frames: list[dict] = []
        self.received_at: list[float] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str, name: str) -> Session:
        socket = await websockets.connect(f"{url}?token={quote(token)}", open_timeout=15)
        return cls(name, socket)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.socket:
                async with self._arrived:
                    self.frames.append(json.loads(raw))
                    self.received_at.append(time.time())
                    self._arrived.notify_all()

    @property
    def events(self) -> list[dict]:
        return [frame for frame in self.frames if "seq" in frame]

    def ids(self) -> set[str]:
        return {event["id"] for event in self.events}

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 20.0) -> dict:
        async def first_match() -> dict:
            async with self._arrived:
                while True:
                    for frame in self.frames:
                        if predicate(frame):
                            return frame
                    await self._arrived.wait()

        try:
            return await asyncio.wait_for(first_match(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name}: no matching frame in {timeout}s; got {self.frames}") from None

    async def wait_for_ids(self, ids: set[str], timeout: float = 20.0) -> None:
        for event_id in ids:
            await self.wait_for(lambda frame, event_id=event_id: frame.get("id") == event_id, timeout)

    def arrival_of(self, event_id: str) -> float:
        return next(at for frame, at in zip(self.frames, self.received_at, strict=True) if frame.get("id") == event_id)

    async def send(self, message: dict | str) -> None:
        await self.socket.send(message if isinstance(message, str) else json.dumps(message))

    async def close(self) -> None:
        await self.socket.close()
        await self._reader
