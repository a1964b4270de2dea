"""The validation worker pool: a task out of budget kills its worker, which is replaced; a
dead worker fails its task and is replaced; a cancelled caller does not kill the worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from llm_router_server.routing.judging import Verdict
from llm_router_server.routing.validation.pool import (
    BudgetExceededError,
    WorkerFailedError,
    WorkerPool,
)
from llm_router_server.routing.validation.worker import CheckSchema, JudgeAnswer
from llm_router_server.types import Category

REDOS = json.dumps({"type": "string", "pattern": "^(a+)+$"})
EVIL = json.dumps("a" * 40 + "!")


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(1)
    yield pool
    pool.close()


async def test_a_task_out_of_budget_kills_the_worker_and_the_next_task_gets_a_new_one(
    pool: WorkerPool,
) -> None:
    await pool.run(CheckSchema(REDOS), 30)
    started = time.monotonic()
    with pytest.raises(BudgetExceededError):
        await pool.run(JudgeAnswer(EVIL, REDOS, ()), 0.2)
    assert time.monotonic() - started < 2
    assert pool.kills == 1
    verdict = await pool.run(JudgeAnswer('"aaa"', REDOS, ()), 30)
    assert isinstance(verdict, Verdict) and verdict.accepted


async def test_a_dead_worker_fails_its_task_and_is_replaced(pool: WorkerPool) -> None:
    await pool.run(CheckSchema(REDOS), 30)
    [worker] = pool._idle
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerFailedError):
        await pool.run(CheckSchema(REDOS), 30)
    verdict = await pool.run(JudgeAnswer("[]", REDOS, ()), 30)
    assert isinstance(verdict, Verdict) and verdict.category is Category.SCHEMA_MISMATCH


async def test_a_cancelled_caller_leaves_the_task_to_finish(pool: WorkerPool) -> None:
    await pool.run(CheckSchema(REDOS), 30)
    slow = asyncio.ensure_future(pool.run(JudgeAnswer(json.dumps("a" * 22 + "!"), REDOS, ()), 30))
    await asyncio.sleep(0.05)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    verdict = await pool.run(JudgeAnswer('"aaa"', REDOS, ()), 30)  # waits for the worker
    assert isinstance(verdict, Verdict) and verdict.accepted
    assert pool.kills == 0


async def test_a_closed_pool_refuses_tasks(pool: WorkerPool) -> None:
    pool.close()
    with pytest.raises(WorkerFailedError, match="closed"):
        await pool.run(CheckSchema(REDOS), 1)
