defmodule Snakepit.CrashStormTest do
  # Random workers are killed with SIGKILL under steady load. Every request must come back
  # exactly once, as a result or a Snakepit.Error, and the pool must heal to full size.
  use ExUnit.Case, async: false

  import Snakepit.TestPool
  alias Snakepit.{Call, Error, TestBlocker}

  @moduletag :fault
  @moduletag :slow

  # SNAKEPIT_STORM_SECONDS shortens it for a quick local run; CI runs the full 30 s.
  @seconds String.to_integer(System.get_env("SNAKEPIT_STORM_SECONDS", "30"))
  @moduletag timeout: (@seconds + 60) * 1_000

  @tag :tmp_dir
  test "a #{@seconds} s crash storm loses and duplicates nothing, and the pool heals", %{
    tmp_dir: dir
  } do
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

        kill_until(pool, shell, stop_at, MapSet.new())
      end)

    tallies = Task.await_many(callers, (@seconds + 30) * 1_000)
    killed = Task.await(killer, 10_000)

    ok = Enum.sum(Enum.map(tallies, & &1.ok))
    errors = Enum.reduce(tallies, %{}, &Map.merge(&2, &1.errors, fn _, a, b -> a + b end))
    crashed = Map.get(errors, :worker_crashed, 0)
    assert MapSet.size(killed) > 10, "the storm killed only #{MapSet.size(killed)} workers"
    assert ok > 0
    # Only the requests running on a killed worker may fail, and only as crashed.
    assert Map.keys(errors) -- [:worker_crashed] == []
    assert crashed <= MapSet.size(killed)

    # Every caller has its answers: each accepted request has exactly one outcome.
    stats = Snakepit.get_stats(pool)
    assert %{requests: requests, completed: ^ok, errors: ^crashed} = stats
    assert requests == ok + crashed
    assert %{callers_gone: 0, in_flight: 0, queued: 0} = stats

    # Only running workers were killed, and the pool reports each death once it has seen it.
    # Once it has seen them all, it heals to full size: four requests run at the same time.
    for os_pid <- killed do
      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^os_pid, _}}, 10_000
    end

    blockers = for _ <- 1..4, do: TestBlocker.new!(dir)
    pending = for b <- blockers, do: elem(Call.submit(pool, "block", TestBlocker.args(b)), 1)
    Enum.each(blockers, &TestBlocker.assert_blocked(&1, 30_000))
    Enum.each(blockers, &TestBlocker.release/1)
    assert Enum.all?(pending, &match?({:ok, _}, Call.await(&1)))
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

  # Kills a random running worker every 20-100 ms (the storm's pace, not a wait) until
  # `stop_at`; returns the OS pids it killed.
  defp kill_until(pool, shell, stop_at, killed) do
    if System.monotonic_time(:millisecond) >= stop_at do
      # Every kill sent has been carried out once the shell answers "done".
      Port.command(shell, "done\n")
      assert_receive {^shell, {:data, "done\n"}}, 10_000
      killed
    else
      Process.sleep(20 + :rand.uniform(80))

      running =
        for %{status: status, os_pid: os_pid} <- Snakepit.list_workers(pool),
            status in [:available, :busy],
            do: os_pid

      case running do
        [] ->
          kill_until(pool, shell, stop_at, killed)

        pids ->
          victim = Enum.random(pids)
          Port.command(shell, "#{victim}\n")
          kill_until(pool, shell, stop_at, MapSet.put(killed, victim))
      end
    end
  end
end
