defmodule Snakepit.CrashStormTest do
  # Random workers are killed with SIGKILL under steady load. Every request must come back
  # exactly once, as a result or a Snakepit.Error, and the pool must heal to full size.
  use ExUnit.Case, async: false

  import Snakepit.TestPool
  alias Snakepit.Error

  @moduletag :fault
  @moduletag :slow

  # SNAKEPIT_STORM_SECONDS shortens it for a quick local run; CI runs the full 30 s.
  @seconds String.to_integer(System.get_env("SNAKEPIT_STORM_SECONDS", "30"))
  @moduletag timeout: (@seconds + 60) * 1_000

  test "a #{@seconds} s crash storm loses and duplicates nothing, and the pool heals" do
    pool = start_test_workers!(size: 4, queue_timeout: 10_000, max_queue_size: 10_000)
    stop_at = System.monotonic_time(:millisecond) + @seconds * 1_000

    callers =
      for caller <- 1..16 do
        Task.async(fn -> call_until(pool, caller, stop_at, %{ok: 0, errors: %{}}) end)
      end

    killer =
      Task.async(fn ->
        # One shell for all kills (`kill` is a builtin): no process start per signal, so the
        # storm keeps its pace even on a loaded machine.
        script = """
        while read pid; do
          if [ "$pid" = done ]; then echo done; exit 0; fi
          kill -KILL "$pid" 2>/dev/null
        done
        """

        shell = Port.open({:spawn_executable, "/bin/sh"}, [:binary, args: ["-c", script]])

        kill_until(pool, shell, stop_at, 0)
      end)

    tallies = Task.await_many(callers, (@seconds + 30) * 1_000)
    kills = Task.await(killer, 10_000)

    ok = Enum.sum(Enum.map(tallies, & &1.ok))
    errors = Enum.reduce(tallies, %{}, &Map.merge(&2, &1.errors, fn _, a, b -> a + b end))
    assert kills > 10, "the storm killed only #{kills} workers"
    assert ok > 0
    # Only the requests running on a killed worker may fail, and only as crashed.
    assert Map.keys(errors) -- [:worker_crashed] == []
    assert Map.get(errors, :worker_crashed, 0) <= kills

    eventually(
      fn -> match?(%{workers: 4, available: 4, queued: 0}, Snakepit.get_stats(pool)) end,
      1_000
    )

    assert Snakepit.get_stats(pool).requests == ok + Map.get(errors, :worker_crashed, 0)
    # A SIGKILL sent at the storm's very end may land (on a loaded machine) after the pool
    # counted that worker as available: a request sent to it then fails as :worker_crashed,
    # as it should. The pool serves again once it has seen the last death.
    assert eventually(fn -> match?({:ok, _}, Snakepit.execute("ping", %{}, pool: pool)) end)
  end

  defp call_until(pool, caller, stop_at, tally) do
    if System.monotonic_time(:millisecond) >= stop_at do
      # A second answer to any request would be waiting here.
      receive do
        {ref, _} = late when is_reference(ref) -> flunk("answered twice: #{inspect(late)}")
      after
        0 -> tally
      end
    else
      seq = System.unique_integer([:positive])
      ms = :rand.uniform(4) - 1

      tally =
        case Snakepit.execute("sleep", %{ms: ms, caller: caller, seq: seq}, pool: pool) do
          {:ok, %{"slept" => ^ms}} ->
            %{tally | ok: tally.ok + 1}

          {:error, %Error{reason: reason}} ->
            %{tally | errors: Map.update(tally.errors, reason, 1, &(&1 + 1))}
        end

      call_until(pool, caller, stop_at, tally)
    end
  end

  defp kill_until(pool, shell, stop_at, kills) do
    if System.monotonic_time(:millisecond) >= stop_at do
      # Every kill sent has been carried out once the shell answers "done".
      Port.command(shell, "done\n")
      assert_receive {^shell, {:data, "done\n"}}, 10_000
      kills
    else
      Process.sleep(20 + :rand.uniform(80))

      case Snakepit.Pool.os_pids(pool) do
        [] ->
          kill_until(pool, shell, stop_at, kills)

        pids ->
          Port.command(shell, "#{Enum.random(pids)}\n")
          kill_until(pool, shell, stop_at, kills + 1)
      end
    end
  end
end
