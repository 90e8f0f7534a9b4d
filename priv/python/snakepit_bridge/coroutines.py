"""Running an adapter's ``async def`` hooks and tools to completion.

The worker answers one request at a time, so it runs each coroutine until it
is done. All of them run on one event loop, kept for the life of the worker,
so that what an async ``initialize()`` creates on the loop (a client
session, a queue) still works in the async tools and ``cleanup()`` that
follow. ``asyncio`` is imported only when an adapter first needs it.
"""

from . import control

_loop = None


def settle(value):
    """``value``, or, if it is awaitable, what awaiting it returns."""
    if not hasattr(value, "__await__"):
        return value
    global _loop
    import asyncio

    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    task = asyncio.ensure_future(value, loop=_loop)
    try:
        with control.awaiting(_loop, task):  # a cancel frame cancels the task
            return _loop.run_until_complete(task)
    except BaseException:
        # Interrupted while the task waited (SIGTERM, or an exception raised
        # in this thread to cancel the request): cancel it, so that it ends
        # (with CancelledError, the next time the loop runs) rather than go
        # on inside a later request.
        if not task.done():
            task.cancel()
        raise


def close():
    """Finish the loop's async generators and close it (at worker exit)."""
    global _loop
    loop, _loop = _loop, None
    if loop is not None and not loop.is_closed():
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
