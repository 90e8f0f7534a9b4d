defmodule Snakepit.QueueTest do
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  @moduletag :tmp_dir

  defp marker_lines(path) do
    case File.read(path) do
      {:ok, text} -> String.split(text, "\n", trim: true)
      {:error, :enoent} -> []
    end
  end

  test "a request that waits past the queue timeout fails and never runs", %{tmp_dir: dir} do
    pool = TestPool.start!(size: 1, queue_timeout: 200)
    marker = Path.join(dir, "ran")

    busy =
      Task.async(fn -> Snakepit.execute("sleep", %{ms: 2_000, marker: marker}, pool: pool) end)

    TestPool.eventually(fn -> marker_lines(marker) == ["2000"] end)

    assert {:error, %Error{reason: :queue_timeout, category: :pool}} =
             Snakepit.execute("sleep", %{ms: 1, marker: marker}, pool: pool)

    assert {:ok, %{"slept" => 2000}} = Task.await(busy)
    # FIFO: had the timed-out request been sent to the worker, it would have run before this one.
    assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    assert marker_lines(marker) == ["2000"]
    assert %{queue_timeouts: 1, queued: 0} = Snakepit.get_stats(pool)
  end

  test "beyond max_queue_size requests are refused with :pool_saturated at once" do
    pool = TestPool.start!(size: 1, max_queue_size: 2, queue_timeout: 10_000)
    running = Task.async(fn -> Snakepit.execute("sleep", %{ms: 1_000}, pool: pool) end)
    TestPool.eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)
    queued = for _ <- 1..2, do: Task.async(fn -> Snakepit.execute("ping", %{}, pool: pool) end)
    TestPool.eventually(fn -> Snakepit.get_stats(pool).queued == 2 end)

    assert {:error, %Error{reason: :pool_saturated}} = Snakepit.execute("ping", %{}, pool: pool)

    assert {:ok, _} = Task.await(running)
    assert [{:ok, _}, {:ok, _}] = Task.await_many(queued)
    assert %{pool_saturated: 1} = Snakepit.get_stats(pool)
  end

  test "an execution timeout fails the caller; that worker gets no new work until it answers" do
    pool = TestPool.start!(size: 2)

    slow = Task.async(fn -> Snakepit.execute("sleep", %{ms: 1_500}, pool: pool, timeout: 100) end)

    assert {:error, %Error{reason: :timeout, category: :worker, message: message}} =
             Task.await(slow)

    assert message =~ "100 ms"
    [stuck] = Enum.filter(Snakepit.list_workers(pool), &(&1.status == :busy))

    # While it is still sleeping, everything goes to the other worker.
    for _ <- 1..20 do
      assert {:ok, %{"pid" => pid}} = Snakepit.execute("whoami", %{}, pool: pool)
      assert pid != stuck.os_pid
    end

    # Once it answers, its reply is discarded and it serves again.
    TestPool.eventually(fn -> Snakepit.get_stats(pool).available == 2 end)
    pids = for _ <- 1..20, do: elem(Snakepit.execute("whoami", %{}, pool: pool), 1)["pid"]
    assert stuck.os_pid in pids
    assert %{timeouts: 1} = Snakepit.get_stats(pool)
    # The late reply never reached this process.
    receive do
      {ref, _} = late when is_reference(ref) -> flunk("late reply delivered: #{inspect(late)}")
    after
      0 -> :ok
    end
  end

  test "a queued request's execution timeout counts from when it reaches a worker" do
    pool = TestPool.start!(size: 1)
    first = Task.async(fn -> Snakepit.execute("sleep", %{ms: 1_200}, pool: pool) end)
    TestPool.eventually(fn -> Snakepit.get_stats(pool).busy == 1 end)
    # Waits about 1.2 s in the queue, longer than its 600 ms execution timeout, then runs 100 ms.
    assert {:ok, %{"slept" => 100}} =
             Snakepit.execute("sleep", %{ms: 100}, pool: pool, timeout: 600)

    assert {:ok, _} = Task.await(first)
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
