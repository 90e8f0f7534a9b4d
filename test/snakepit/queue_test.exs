defmodule Snakepit.QueueTest do
  use ExUnit.Case, async: true

  alias Snakepit.{Call, Error, TestBlocker, TestPool}

  @moduletag :tmp_dir

  test "a request that waits past the queue timeout fails and never runs", %{tmp_dir: dir} do
    pool = TestPool.start!(size: 1, queue_timeout: 200)
    holder = TestBlocker.new!(dir)
    {:ok, running} = Call.submit(pool, "block", TestBlocker.args(holder))
    TestBlocker.assert_blocked(holder)

    # The only worker is blocked until released, so this request can only wait, then expire.
    never = TestBlocker.new!(dir)

    assert {:error, %Error{reason: :queue_timeout, category: :timeout}} =
             Snakepit.execute("block", TestBlocker.args(never), pool: pool)

    TestBlocker.release(holder)
    assert {:ok, %{"released" => "go" <> _}} = Call.await(running)
    # FIFO: had the expired request been sent to the worker, it would have run before this one
    # (and blocked it).
    assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    refute TestBlocker.started?(never)
    assert %{queue_timeouts: 1, queued: 0} = Snakepit.get_stats(pool)
  end

  test "beyond max_queue_size requests are refused with :pool_saturated at once", %{tmp_dir: dir} do
    pool = TestPool.start!(size: 1, max_queue_size: 2, queue_timeout: 60_000)
    blocker = TestBlocker.new!(dir)
    {:ok, running} = Call.submit(pool, "block", TestBlocker.args(blocker))
    TestBlocker.assert_blocked(blocker)
    queued = for _ <- 1..2, do: elem(Call.submit(pool, "ping", %{}), 1)

    assert {:error, %Error{reason: :pool_saturated}} = Snakepit.execute("ping", %{}, pool: pool)

    TestBlocker.release(blocker)
    assert {:ok, _} = Call.await(running)
    assert [{:ok, _}, {:ok, _}] = Enum.map(queued, &Call.await/1)
    assert %{pool_saturated: 1} = Snakepit.get_stats(pool)
  end

  test "an execution timeout fails the caller; that worker gets no new work until it answers",
       %{tmp_dir: dir} do
    pool = TestPool.start!(size: 2, cancel_grace: 60_000)
    blocker = TestBlocker.new!(dir)

    assert {:error, %Error{reason: :timeout, category: :timeout, message: message}} =
             Snakepit.execute("block", TestBlocker.args(blocker), pool: pool, timeout: 100)

    assert message =~ "100 ms"
    [stuck] = Enum.filter(Snakepit.list_workers(pool), &(&1.status == :busy))

    # While it is still blocked, everything goes to the other worker.
    for _ <- 1..20 do
      assert {:ok, %{"pid" => pid}} = Snakepit.execute("whoami", %{}, pool: pool)
      assert pid != stuck.os_pid
    end

    # Once it answers, its reply is discarded and it serves again: two requests blocked at the
    # same time hold both workers.
    TestBlocker.release(blocker)
    both = for _ <- 1..2, do: TestBlocker.new!(dir)
    pending = for b <- both, do: elem(Call.submit(pool, "block", TestBlocker.args(b)), 1)
    Enum.each(both, &TestBlocker.assert_blocked/1)
    assert stuck.os_pid in Snakepit.Pool.os_pids(pool)
    assert Enum.all?(Snakepit.list_workers(pool), &(&1.status == :busy))
    Enum.each(both, &TestBlocker.release/1)
    assert [{:ok, _}, {:ok, _}] = Enum.map(pending, &Call.await/1)
    assert %{timeouts: 1} = Snakepit.get_stats(pool)

    # The late reply never reached this process.
    receive do
      {ref, _} = late when is_reference(ref) -> flunk("late reply delivered: #{inspect(late)}")
    after
      0 -> :ok
    end
  end

  test "200 concurrent callers × 200 requests: every reply reaches its own caller" do
    pool = TestPool.start!(size: 4, max_queue_size: 1_000)

    results =
      1..200
      |> Enum.map(fn caller ->
        Task.async(fn ->
          Enum.count(1..200, fn seq ->
            {:ok, reply} = Snakepit.execute("echo", %{caller: caller, seq: seq}, pool: pool)
            reply == %{"caller" => caller, "seq" => seq}
          end)
        end)
      end)
      |> Task.await_many(120_000)

    assert results == List.duplicate(200, 200)
    stats = Snakepit.get_stats(pool)
    assert %{requests: 40_000, errors: 0, queued: 0} = stats
  end
end
