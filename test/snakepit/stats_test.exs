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
