"""Helpers shared by the client test files that drive the Python `mcp` SDK."""

import anyio


def run(fn, *args):
    """Run one async test body with an overall deadline, so a hung server fails the test.
    An assertion raised inside `async with Client(...)` surfaces wrapped in (nested) exception
    groups from the SDK's task groups; re-raise the single leaf so pytest shows it plainly."""
    async def body():
        with anyio.fail_after(300):
            return await fn(*args)
    try:
        return anyio.run(body)
    except BaseExceptionGroup as group:
        leaf = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is group:
            raise
        raise leaf from None
