defmodule Snakepit.StatsTest do
  # Every accepted request has exactly one outcome, so in any snapshot of the counters
  #   requests == completed + errors + callers_gone + in_flight + queued
  # and errors is the sum of its kinds. Refused calls are not requests.
  use ExUnit.Case, async: true

  import Snakepit.TestPool
  alias Snakepit.{Call, Error, TestBlocker}

  @moduletag :tmp_dir

  test "the counters add up after every kind of outcome", %{tmp_dir: dir} do
    pool =
      start_test_workers!(
        size: 1,
        max_queue_size: 1,
        queue_timeout: 60_000,
        cancel_grace: 60_000
      )

    # Answered with a result; the command raised; no such command.
    assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)

    assert {:error, %Error{reason: :worker_error}} =
             Snakepit.execute("fail", %{message: "boom"}, pool: pool)

    assert {:error, %Error{reason: :unknown_command}} =
             Snakepit.execute("no_such_command", %{}, pool: pool)

    # Timed out. Its late answer (once released) must not count as completed too.
    late = TestBlocker.new!(dir)

    assert {:error, %Error{reason: :timeout}} =
             Snakepit.execute("block", TestBlocker.args(late), pool: pool, timeout: 100)

    TestBlocker.release(late)
    # Waits for the worker to have answered.
    assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)

    # One running, one waiting, one refused because the queue is full.
    running = TestBlocker.new!(dir)
    {:ok, in_flight} = Call.submit(pool, "block", TestBlocker.args(running))
    TestBlocker.assert_blocked(running)
    {:ok, queued} = Call.submit(pool, "ping", %{})

    assert {:error, %Error{reason: :pool_saturated}} = Snakepit.execute("ping", %{}, pool: pool)

    assert %{requests: 7, in_flight: 1, queued: 1, completed: 2, errors: 3, pool_saturated: 1} =
             assert_identity(Snakepit.get_stats(pool))

    TestBlocker.release(running)
    assert {:ok, _} = Call.await(in_flight)
    assert {:ok, _} = Call.await(queued)

    # Lost with its worker.
    doomed = TestBlocker.new!(dir)
    {:ok, lost} = Call.submit(pool, "block", TestBlocker.args(doomed))
    TestBlocker.assert_blocked(doomed)
    os_kill(only_worker_pid(pool), "KILL")
    assert {:error, %Error{reason: :worker_crashed}} = Call.await(lost)

    assert %{
             requests: 8,
             completed: 4,
             errors: 4,
             worker_errors: 2,
             timeouts: 1,
             requests_lost: 1,
             queue_timeouts: 0,
             callers_gone: 0,
             in_flight: 0,
             queued: 0,
             pool_saturated: 1
           } = assert_identity(Snakepit.get_stats(pool))
  end

  test "a queue timeout is an error of an accepted request", %{tmp_dir: dir} do
    pool = start_test_workers!(size: 1, queue_timeout: 100)
    blocker = TestBlocker.new!(dir)
    {:ok, running} = Call.submit(pool, "block", TestBlocker.args(blocker))
    TestBlocker.assert_blocked(blocker)

    # The only worker is blocked until released: this request can only wait, then expire.
    assert {:error, %Error{reason: :queue_timeout}} = Snakepit.execute("ping", %{}, pool: pool)

    assert %{requests: 2, in_flight: 1, queued: 0, errors: 1, queue_timeouts: 1} =
             assert_identity(Snakepit.get_stats(pool))

    TestBlocker.release(blocker)
    assert {:ok, _} = Call.await(running)

    assert %{requests: 2, completed: 1, errors: 1, in_flight: 0} =
             assert_identity(Snakepit.get_stats(pool))
  end

  describe "latency and per-worker figures" do
    # Exact numbers are the core's rule tests (native/snakepit_core/tests/latency.rs); here,
    # with real workers, their presence, shape and monotonicity.
    test "an unused pool has empty windows and no error rate" do
      pool = start_test_workers!(size: 2)
      empty = %{p50: 0.0, p95: 0.0, p99: 0.0, samples: 0}

      assert %{error_rate: 0.0, queue_time_ms: ^empty, run_time_ms: ^empty} =
               Snakepit.get_stats(pool)

      for worker <- Snakepit.list_workers(pool) do
        assert %{requests: 0, errors: 0, last_used_ms_ago: nil, uptime_ms: uptime} = worker
        assert is_integer(uptime) and uptime >= 0
        assert is_integer(worker.memory_rss_bytes) and worker.memory_rss_bytes > 0
      end
    end

    test "the windows fill, their percentiles are ordered, the error rate is errors / finished",
         %{tmp_dir: dir} do
      pool = start_test_workers!(size: 1)

      for n <- 1..3 do
        assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
        assert %{run_time_ms: %{samples: ^n}, queue_time_ms: %{samples: ^n}} = stats(pool)
      end

      assert {:error, %Error{}} = Snakepit.execute("fail", %{}, pool: pool)
      blocker = TestBlocker.new!(dir)

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("block", TestBlocker.args(blocker), pool: pool, timeout: 50)

      TestBlocker.release(blocker)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)

      stats = stats(pool)
      assert %{completed: 4, errors: 2, run_time_ms: run, queue_time_ms: queue} = stats
      assert stats.error_rate == 2 / 6
      assert run.samples == 6 and queue.samples == 6
      # The timed-out request ran at least its 50 ms timeout: the top of the run window.
      assert run.p99 >= 50.0

      [worker] = Snakepit.list_workers(pool)
      # The late answer of the timed-out request counts as a request, not as an error again.
      assert %{requests: 6, errors: 2, last_used_ms_ago: ago} = worker
      assert is_integer(ago) and ago >= 0
      [later] = Snakepit.list_workers(pool)
      assert later.uptime_ms >= worker.uptime_ms
      assert later.last_used_ms_ago >= ago
    end

    test "a BEAM worker has no OS memory to report" do
      pool = start_test_workers!(size: 1, adapter_module: Snakepit.BeamPingAdapter)
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)

      assert [%{os_pid: nil, memory_rss_bytes: nil, requests: 1, errors: 0}] =
               Snakepit.list_workers(pool)
    end
  end

  # The counters add up, and percentiles never decrease p50 → p95 → p99.
  defp stats(pool) do
    stats = assert_identity(Snakepit.get_stats(pool))

    for window <- [stats.queue_time_ms, stats.run_time_ms] do
      assert window.p50 <= window.p95 and window.p95 <= window.p99, inspect(window)
    end

    stats
  end

  defp assert_identity(stats) do
    outcomes = ~w(completed errors callers_gone in_flight queued)a

    kinds =
      ~w(worker_errors timeouts queue_timeouts requests_lost shutdown_errors circuit_errors)a

    sum = fn keys -> keys |> Enum.map(&Map.fetch!(stats, &1)) |> Enum.sum() end

    assert Map.fetch!(stats, :requests) == sum.(outcomes), "counters: #{inspect(stats)}"
    assert Map.fetch!(stats, :errors) == sum.(kinds), "counters: #{inspect(stats)}"
    stats
  end
end
