defmodule Snakepit.LongTimeoutTest do
  # A caller waiting with `timeout: :infinity` (or any timeout beyond `receive ... after`'s
  # 2^32 - 1 ms) must never crash: the pool tells it to wait at most that long at a time.
  use ExUnit.Case, async: true

  alias Snakepit.{Call, Native, TestBlocker, TestPool}

  @moduletag :tmp_dir

  test "a running request with timeout: :infinity asks its caller to wait a bounded time",
       %{tmp_dir: dir} do
    pool = TestPool.start_test_workers!(size: 1, queue_timeout: 50)
    blocker = TestBlocker.new!(dir)

    {:ok, pending} = Call.submit(pool, "block", TestBlocker.args(blocker), timeout: :infinity)

    TestBlocker.assert_blocked(blocker)
    # What the caller's wait asks once its first wait (the queue timeout) has run out (the
    # pending request's internals: native pool, tag, request id, first wait).
    {native, request_id, first_wait} = {elem(pending, 0), elem(pending, 2), elem(pending, 3)}
    assert first_wait == 50
    assert {:wait, ms} = Native.pool_check_deadline(native, request_id)
    assert ms <= 0xFFFF_FFFF

    TestBlocker.release(blocker)
    assert {:ok, %{"released" => "go"}} = Call.await(pending)
  end
end
